"""Value objects stored in the history store, and the JSON encoding they go through.

Records are frozen dataclasses. Metric *states* are opaque JSON-safe dicts produced by the
metric core; the store encodes them so that every value survives a round trip through a
JSON column on SQLite and PostgreSQL alike:

* non-finite floats in states, metadata and alert payloads are written as the tagged
  objects ``{"$float": "nan"}``, ``{"$float": "inf"}`` and ``{"$float": "-inf"}``;
* datetimes are written as ``{"$datetime": "<ISO 8601>"}``;
* in the per-metric ``metrics`` dict a non-finite ``value`` (or interval bound) becomes
  ``None`` and the entry's ``reason`` says why.
"""

from __future__ import annotations

import math
import numbers
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perfkit._checks import MAX_NAME_LENGTH, check_metadata, check_timestamp
from perfkit._checks import check_name as _checks_name
from perfkit.exceptions import InputTypeError, ValidationError

__all__ = [
    "ALL_SEGMENTS",
    "METRIC_FIELDS",
    "NAME_MAX",
    "TASKS",
    "BaselineRecord",
    "BatchRecord",
    "check_name",
    "decode_json",
    "encode_json",
    "normalize_metrics",
    "to_utc",
]

TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
"""The task names a record may carry."""

METRIC_FIELDS: tuple[str, ...] = ("value", "ci_lower", "ci_upper", "se", "reason")
"""The keys of one entry of a record's ``metrics`` dict."""


class _AllSegments:
    """Sentinel type of :data:`ALL_SEGMENTS`."""

    _instance: _AllSegments | None = None

    def __new__(cls) -> _AllSegments:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_SEGMENTS"

    def __reduce__(self) -> str:
        return "ALL_SEGMENTS"


ALL_SEGMENTS = _AllSegments()
"""Query default meaning "every segment"; ``None`` selects the unsegmented rows only."""


def to_utc(value: datetime, parameter: str) -> datetime:
    """Return a tz-aware datetime converted to UTC.

    Parameters
    ----------
    value : datetime
        A timezone-aware datetime.
    parameter : str
        Name of the parameter, used in the error message.

    Returns
    -------
    datetime
        The same instant with ``tzinfo=UTC``.

    Raises
    ------
    ValidationError
        If ``value`` is naive.
    InputTypeError
        If ``value`` is not a datetime.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> to_utc(datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), "timestamp")
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    return check_timestamp(value, parameter)


def _float_tag(value: float) -> dict[str, str]:
    if math.isnan(value):
        return {"$float": "nan"}
    return {"$float": "inf" if value > 0 else "-inf"}


_PLAIN = frozenset({str, int, bool, type(None)})  # JSON leaves kept as they are


def encode_json(value: Any, parameter: str, _path: str = "") -> Any:
    """Return a strictly JSON-serialisable copy of ``value``.

    Non-finite floats and datetimes become tagged objects (see the module docstring);
    tuples become lists; numpy scalars become Python numbers.

    Parameters
    ----------
    value : object
        Nested dicts (str keys), lists, tuples, str, int, float, bool, None, datetime.
    parameter : str
        Name of the parameter, used in error messages.

    Returns
    -------
    object
        The encoded value.

    Raises
    ------
    ValidationError
        On a non-string dict key or an unsupported value type (the message gives the path).

    Examples
    --------
    >>> encode_json({"a": [1.0, float("nan")], "b": (1, 2)}, "state")
    {'a': [1.0, {'$float': 'nan'}], 'b': [1, 2]}
    >>> decode_json(encode_json({"x": float("-inf")}, "state"))
    {'x': -inf}
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _float_tag(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{parameter}{_path} has a non-string key {key!r}; JSON keys must be str",
                    parameter=parameter,
                )
            kind = type(item)  # plain leaves inline: a state has hundreds of them
            if kind in _PLAIN or (kind is float and math.isfinite(item)):
                out[key] = item
            else:
                out[key] = encode_json(item, parameter, f"{_path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [item if (type(item) in _PLAIN or (type(item) is float and math.isfinite(item)))
                else encode_json(item, parameter, f"{_path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, numbers.Integral):  # numpy integers
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats
        return encode_json(float(value), parameter, _path)
    if type(value).__name__ == "bool_":
        return bool(value)
    raise ValidationError(
        f"{parameter}{_path} holds a {type(value).__name__}, which is not JSON-safe; "
        "use dicts, lists, str, int, float, bool or None",
        parameter=parameter,
    )


def _json_object_hook(obj: dict[str, Any]) -> Any:
    """``json.loads`` object hook undoing the tags written by :func:`encode_json`."""
    if len(obj) == 1:
        if "$float" in obj:
            return float(obj["$float"])
        if "$datetime" in obj:
            return datetime.fromisoformat(obj["$datetime"])
    return obj


def decode_json(value: Any) -> Any:
    """Undo :func:`encode_json` on an already parsed JSON value.

    Examples
    --------
    >>> decode_json({"v": {"$float": "inf"}, "w": [{"$float": "nan"}]})
    {'v': inf, 'w': [nan]}
    """
    if isinstance(value, dict):
        decoded = {key: decode_json(item) for key, item in value.items()}
        return _json_object_hook(decoded)
    if isinstance(value, list):
        return [decode_json(item) for item in value]
    return value


def _finite_or_none(value: Any, parameter: str) -> tuple[float | None, str | None]:
    """Return ``(float or None, reason for a dropped non-finite value or None)``."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"{parameter} must be a number or None, got {value!r}", parameter=parameter
        )
    number = float(value)
    if math.isfinite(number):
        return number, None
    return None, "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


def normalize_metrics(metrics: dict[str, Any], parameter: str = "metrics") -> dict[str, dict]:
    """Return ``metrics`` with every entry holding exactly the keys of :data:`METRIC_FIELDS`.

    A bare number is taken as the ``value``. Non-finite numbers become ``None`` and, when
    the entry has no ``reason`` yet, the reason records what the value was.

    Examples
    --------
    >>> normalize_metrics({"accuracy": 0.9, "f1": {"value": float("nan")}})["f1"]
    {'value': None, 'ci_lower': None, 'ci_upper': None, 'se': None, 'reason': 'non-finite value: nan'}
    """
    if not isinstance(metrics, dict):
        raise InputTypeError(
            f"{parameter} must be a dict of metric name -> dict, got {type(metrics).__name__}",
            parameter=parameter,
        )
    out: dict[str, dict] = {}
    for name, entry in metrics.items():
        if not isinstance(name, str):
            raise ValidationError(
                f"{parameter} has a non-string metric name {name!r}", parameter=parameter
            )
        if entry is None or isinstance(entry, numbers.Real):
            entry = {"value": entry}
        if not isinstance(entry, dict):
            raise ValidationError(
                f"{parameter}[{name!r}] must be a dict with keys {METRIC_FIELDS}, got {entry!r}",
                parameter=parameter,
            )
        reason = entry.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ValidationError(
                f"{parameter}[{name!r}]['reason'] must be str or None, got {reason!r}",
                parameter=parameter,
            )
        normal: dict[str, Any] = {}
        dropped: list[str] = []
        for key in ("value", "ci_lower", "ci_upper", "se"):
            number, why = _finite_or_none(entry.get(key), f"{parameter}[{name!r}][{key!r}]")
            normal[key] = number
            if why is not None:
                dropped.append(why if key == "value" else f"{key}={why}")
        if reason is None and dropped:
            reason = "non-finite value: " + ", ".join(dropped)
        normal["reason"] = reason
        for key, item in entry.items():  # keep extra keys the core may add
            if key not in normal:
                normal[key] = encode_json(item, parameter, f"[{name!r}][{key!r}]")
        out[name] = normal
    return out


def _new_batch_id() -> str:
    return uuid.uuid4().hex


NAME_MAX = MAX_NAME_LENGTH
"""Longest model / segment / batch id / version name every backend stores."""


def check_name(value: Any, parameter: str) -> str:
    """The one name rule (:func:`perfkit._checks.check_name`), required (not optional)."""
    return _checks_name(value, parameter)


def _check_str(value: Any, parameter: str, *, optional: bool = False) -> None:
    _checks_name(value, parameter, optional=optional)


@dataclass(frozen=True)
class BatchRecord:
    """One scored batch of one model (and optionally one segment).

    Parameters
    ----------
    model : str
        Model name.
    timestamp : datetime
        Timezone-aware time of the batch; converted to UTC. Naive datetimes are rejected.
    task : {"binary", "multiclass", "regression"}
        The task of the model.
    state : dict
        Opaque JSON-safe metric state (``state.to_dict()`` of the metric core).
    metrics : dict
        ``{name: {"value", "ci_lower", "ci_upper", "se", "reason"}}``; normalised by
        :func:`normalize_metrics` (non-finite numbers become ``None`` with a reason).
    sample_count : int
        Number of rows in the batch (>= 0).
    batch_id : str, optional
        Unique per (model, segment); a random uuid4 hex by default.
    segment : str or None
        Segment name, ``None`` for the whole population.
    model_version : str or None
        Version of the model that produced the predictions.
    performance_score : float or None
        Summary score of the batch; non-finite values become ``None``.
    labels_pending : bool
        True for a prediction-only record waiting for late labels.
    metadata : dict
        User JSON, checked by :func:`perfkit._checks.check_metadata` (nesting <= 64 levels, finite numbers).
    id, created_at, updated_at
        Set by the store on read.

    Raises
    ------
    ValidationError
        On a naive timestamp, an unknown task, a negative sample count, or non-JSON values.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> r = BatchRecord("churn", datetime(2024, 5, 1, tzinfo=timezone.utc), "binary",
    ...                 state={"tp": 3}, metrics={"accuracy": 0.75}, sample_count=4,
    ...                 batch_id="b1")
    >>> r.metrics["accuracy"]["value"], r.segment, r.id
    (0.75, None, None)
    """

    model: str
    timestamp: datetime
    task: str
    state: dict
    metrics: dict
    sample_count: int
    batch_id: str = field(default_factory=_new_batch_id)
    segment: str | None = None
    model_version: str | None = None
    performance_score: float | None = None
    labels_pending: bool = False
    metadata: dict = field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_str(self.model, "model")
        _check_str(self.batch_id, "batch_id")
        _check_str(self.segment, "segment", optional=True)
        _check_str(self.model_version, "model_version", optional=True)
        if self.task not in TASKS:
            raise ValidationError(
                f"task must be one of {TASKS}, got {self.task!r}", parameter="task"
            )
        object.__setattr__(self, "timestamp", to_utc(self.timestamp, "timestamp"))
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_utc(value, name))
        if (
            isinstance(self.sample_count, bool)
            or not isinstance(self.sample_count, numbers.Integral)
            or self.sample_count < 0
        ):
            raise ValidationError(
                f"sample_count must be an int >= 0, got {self.sample_count!r}",
                parameter="sample_count",
            )
        object.__setattr__(self, "sample_count", int(self.sample_count))
        if not isinstance(self.labels_pending, bool):
            raise ValidationError(
                f"labels_pending must be a bool, got {self.labels_pending!r}",
                parameter="labels_pending",
            )
        for name in ("state", "metadata"):
            if not isinstance(getattr(self, name), dict):
                raise InputTypeError(
                    f"{name} must be a dict, got {type(getattr(self, name)).__name__}",
                    parameter=name,
                )
        object.__setattr__(self, "metadata", check_metadata(self.metadata))
        object.__setattr__(self, "metrics", normalize_metrics(self.metrics))
        score, _ = _finite_or_none(self.performance_score, "performance_score")
        object.__setattr__(self, "performance_score", score)


@dataclass(frozen=True)
class BaselineRecord:
    """One version of a model's (or segment's) reference baseline.

    Attributes
    ----------
    model : str
    segment : str or None
    version : int
        1, 2, ... per (model, segment); the latest is the active baseline.
    state : dict
        Metric state of the reference data.
    metrics : dict
        Metric values of the reference data, shaped as in :class:`BatchRecord`.
    source : str
        Where the baseline came from (e.g. ``"reference-data"``, ``"first-weeks"``).
    sample_count : int
    model_version : str or None
    created_at : datetime
    id : int
    """

    model: str
    segment: str | None
    version: int
    state: dict
    metrics: dict
    source: str
    sample_count: int
    model_version: str | None
    created_at: datetime
    id: int
