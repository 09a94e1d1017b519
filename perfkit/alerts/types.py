"""Alert value objects: what an alert says, and what happened when it was sent.

An :class:`Alert` is a frozen, self-describing record of one finding (a degraded metric, a
model below its floor, a retraining trigger). It renders itself as a one-line subject, a
plain-text body and an HTML body, and round-trips through a JSON-safe dictionary.
A :class:`DeliveryResult` records the outcome of handing an alert to one channel.

Every user-supplied string (model, segment, metric, batch id, message, metadata keys and
values) is treated as untrusted: :meth:`Alert.html` escapes all of them and
:meth:`Alert.subject` strips line breaks so that it is always a single header-safe line.
"""

from __future__ import annotations

import html
import math
import numbers
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from perfkit._json import json_safe as _json_safe
from perfkit.exceptions import InputTypeError, ValidationError

__all__ = [
    "ALERT_TYPES",
    "DELIVERY_STATUSES",
    "SEVERITIES",
    "Alert",
    "DeliveryResult",
]

#: Alert severities, from least to most severe.
SEVERITIES: tuple[str, ...] = ("minor", "moderate", "critical")

#: The kinds of alert perfkit raises.
ALERT_TYPES: tuple[str, ...] = (
    "performance_degradation",
    "low_performance",
    "retraining_trigger",
    "estimated_performance_degradation",
    "concept_drift_suspected",
)

#: The outcomes a :class:`DeliveryResult` can record.
DELIVERY_STATUSES: tuple[str, ...] = ("delivered", "failed")

_FLOAT_FIELDS = (
    "baseline",
    "current",
    "ci_lower",
    "ci_upper",
    "relative_change",
    "p_value",
    "adjusted_p_value",
)
_OPTIONAL_STR_FIELDS = ("segment", "metric", "batch_id", "model_version")
_SUBJECT_MAX = 200


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _one_line(text: str) -> str:
    """Collapse every line break and control character into single spaces."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())


def _fmt_num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def _fmt_p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}"


def _fmt_change(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.1f} %"


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert raised by perfkit.

    All fields are keyword-only. Only ``model``, ``alert_type`` and ``severity`` are
    required; the id and the timestamp are filled in automatically.

    Parameters
    ----------
    alert_id : str
        Unique id; a random ``uuid4`` hex string by default.
    model : str
        Name of the monitored model.
    segment : str or None
        Segment (slice) of the traffic the alert is about; ``None`` for all traffic.
    metric : str or None
        Metric the alert is about; ``None`` for whole-model alerts (e.g. low performance).
    alert_type : str
        One of :data:`ALERT_TYPES`.
    severity : str
        One of :data:`SEVERITIES`.
    baseline, current : float or None
        Reference value and current value of the metric.
    ci_lower, ci_upper : float or None
        Confidence interval of the current value.
    relative_change : float or None
        Signed relative change of the metric *value*, ``(current - baseline) / |baseline|``:
        ``-0.12`` means the value fell by 12 % (bad for a higher-is-better metric such as
        accuracy, good for a lower-is-better one such as log loss).
    p_value, adjusted_p_value : float or None
        Raw p-value of the test behind the alert, and the value after multiple-testing
        adjustment.
    timestamp : datetime
        When the alert was raised; must be timezone-aware and is stored in UTC.
    batch_id : str or None
        Batch that triggered the alert.
    model_version : str or None
        Version of the model that was evaluated.
    message : str
        Free-text summary; when empty a summary is generated from the other fields.
    metadata : Mapping[str, Any]
        Extra user-supplied context. Copied on construction; keys are turned into strings.

    Notes
    -----
    Float fields accept any real number (numpy scalars included) and are stored as
    ``float``; NaN is stored as ``None`` ("not available"). Infinite values are kept on the
    object but exported as ``None`` by :meth:`to_dict`, which must stay valid JSON.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> alert = Alert(
    ...     model="churn", segment="eu", metric="accuracy",
    ...     alert_type="performance_degradation", severity="critical",
    ...     baseline=0.91, current=0.70, relative_change=-0.23,
    ...     timestamp=datetime(2024, 5, 6, 12, 0, tzinfo=timezone.utc),
    ... )
    >>> alert.subject()
    "[perfkit CRITICAL] model 'churn' (segment 'eu'): accuracy dropped 23.0 % vs baseline"
    >>> Alert.from_dict(alert.to_dict()) == alert
    True
    """

    alert_id: str = field(default_factory=_new_id)
    model: str
    segment: str | None = None
    metric: str | None = None
    alert_type: str
    severity: str
    baseline: float | None = None
    current: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    relative_change: float | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    timestamp: datetime = field(default_factory=_utcnow)
    batch_id: str | None = None
    model_version: str | None = None
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("alert_id", "model", "alert_type", "severity", "message"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InputTypeError(
                    f"Alert: {name} must be a str, got {type(value).__name__}", parameter=name
                )
        if not self.alert_id:
            raise ValidationError("Alert: alert_id must not be empty", parameter="alert_id")
        if not self.model:
            raise ValidationError("Alert: model must not be empty", parameter="model")
        if self.alert_type not in ALERT_TYPES:
            raise ValidationError(
                f"Alert: alert_type must be one of {ALERT_TYPES}, got {self.alert_type!r}",
                parameter="alert_type",
            )
        if self.severity not in SEVERITIES:
            raise ValidationError(
                f"Alert: severity must be one of {SEVERITIES}, got {self.severity!r}",
                parameter="severity",
            )
        for name in _OPTIONAL_STR_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputTypeError(
                    f"Alert: {name} must be a str or None, got {type(value).__name__}",
                    parameter=name,
                )
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InputTypeError(
                    f"Alert: {name} must be a real number or None, got {value!r}",
                    parameter=name,
                )
            as_float = float(value)
            object.__setattr__(self, name, None if math.isnan(as_float) else as_float)
        if not isinstance(self.timestamp, datetime):
            raise InputTypeError(
                f"Alert: timestamp must be a datetime, got {type(self.timestamp).__name__}",
                parameter="timestamp",
            )
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise ValidationError(
                "Alert: timestamp must be timezone-aware (e.g. tzinfo=timezone.utc)",
                parameter="timestamp",
            )
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))
        if not isinstance(self.metadata, Mapping):
            raise InputTypeError(
                f"Alert: metadata must be a mapping, got {type(self.metadata).__name__}",
                parameter="metadata",
            )
        object.__setattr__(self, "metadata", {str(k): v for k, v in self.metadata.items()})

    # ------------------------------------------------------------------ export / import
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary of every field.

        The timestamp becomes an ISO 8601 string, NaN and infinities become ``None`` and
        metadata values are converted to plain JSON types (unknown objects via ``str``).

        Examples
        --------
        >>> from datetime import datetime, timezone
        >>> d = Alert(model="m", alert_type="low_performance", severity="minor",
        ...           alert_id="abc", timestamp=datetime(2024, 1, 1, tzinfo=timezone.utc),
        ...           current=float("nan")).to_dict()
        >>> d["timestamp"], d["current"], d["alert_id"]
        ('2024-01-01T00:00:00+00:00', None, 'abc')
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "timestamp":
                out[f.name] = value.isoformat()
            elif f.name == "metadata":
                out[f.name] = _json_safe(value)
            elif f.name in _FLOAT_FIELDS:
                out[f.name] = value if value is None or math.isfinite(value) else None
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output.

        Parameters
        ----------
        data : Mapping[str, Any]
            A dictionary as produced by :meth:`to_dict`; ``timestamp`` may be an ISO 8601
            string or a timezone-aware ``datetime``.

        Raises
        ------
        ValidationError
            If a key is unknown, a required key is missing or the timestamp is unreadable.

        Examples
        --------
        >>> a = Alert(model="m", alert_type="retraining_trigger", severity="moderate")
        >>> Alert.from_dict(a.to_dict()) == a
        True
        """
        if not isinstance(data, Mapping):
            raise InputTypeError(
                f"Alert.from_dict: data must be a mapping, got {type(data).__name__}",
                parameter="data",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"Alert.from_dict: unknown keys {unknown}; valid keys are {sorted(known)}",
                parameter="data",
            )
        missing = [name for name in ("model", "alert_type", "severity") if name not in data]
        if missing:
            raise ValidationError(
                f"Alert.from_dict: missing required keys {missing}", parameter="data"
            )
        kwargs = dict(data)
        stamp = kwargs.get("timestamp")
        if isinstance(stamp, str):
            try:
                kwargs["timestamp"] = datetime.fromisoformat(stamp)
            except ValueError as exc:
                raise ValidationError(
                    f"Alert.from_dict: timestamp {stamp!r} is not ISO 8601",
                    parameter="timestamp",
                ) from exc
        if kwargs.get("metadata") is None:
            kwargs.pop("metadata", None)
        if kwargs.get("message") is None:
            kwargs.pop("message", None)
        return cls(**kwargs)

    # ------------------------------------------------------------------ rendering
    def _where(self) -> str:
        where = f"model '{_one_line(self.model)}'"
        if self.segment is not None:
            where += f" (segment '{_one_line(self.segment)}')"
        return where

    def summary(self) -> str:
        """Return the one-line summary: the first line of ``message``, or a generated one.

        Examples
        --------
        >>> Alert(model="m", metric="rmse", alert_type="performance_degradation",
        ...       severity="minor", relative_change=0.151).summary()
        'rmse rose 15.1 % vs baseline'
        >>> Alert(model="m", alert_type="low_performance", severity="moderate").summary()
        'performance below the acceptable level'
        """
        if self.message.strip():
            return _one_line(self.message.strip().splitlines()[0])
        metric = _one_line(self.metric) if self.metric is not None else None
        if self.alert_type == "performance_degradation":
            subject = metric or "performance"
            if self.relative_change is None or not math.isfinite(self.relative_change):
                return f"{subject} degraded vs baseline"
            verb = "dropped" if self.relative_change < 0 else "rose"
            return f"{subject} {verb} {abs(self.relative_change) * 100:.1f} % vs baseline"
        if self.alert_type == "low_performance":
            if metric is None:
                return "performance below the acceptable level"
            value = f" ({_fmt_num(self.current)})" if self.current is not None else ""
            return f"{metric} below the acceptable level{value}"
        reason = f" ({metric})" if metric is not None else ""
        return f"retraining triggered{reason}"

    def subject(self) -> str:
        """Return a one-line subject (no line breaks, at most 200 characters).

        Examples
        --------
        >>> Alert(model="churn", alert_type="retraining_trigger", severity="minor").subject()
        "[perfkit MINOR] model 'churn': retraining triggered"
        """
        line = f"[perfkit {self.severity.upper()}] {self._where()}: {self.summary()}"
        if len(line) > _SUBJECT_MAX:
            line = line[: _SUBJECT_MAX - 1] + "…"
        return line

    def _facts(self) -> list[tuple[str, str]]:
        """Label/value pairs shared by the plain-text and HTML bodies (values unescaped)."""
        current = _fmt_num(self.current)
        if self.ci_lower is not None or self.ci_upper is not None:
            current += f" (interval {_fmt_num(self.ci_lower)} to {_fmt_num(self.ci_upper)})"
        rows = [
            ("Model", self.model),
            ("Model version", self.model_version if self.model_version is not None else "n/a"),
            ("Segment", self.segment if self.segment is not None else "all"),
            ("Metric", self.metric if self.metric is not None else "n/a (whole model)"),
            ("Baseline", _fmt_num(self.baseline)),
            ("Current", current),
            ("Relative change", _fmt_change(self.relative_change)),
            ("Severity", self.severity),
            ("Type", self.alert_type),
            ("p-value", _fmt_p(self.p_value)),
            ("Adjusted p-value", _fmt_p(self.adjusted_p_value)),
            ("Timestamp", self.timestamp.isoformat()),
            ("Batch", self.batch_id if self.batch_id is not None else "n/a"),
            ("Alert id", self.alert_id),
        ]
        return rows

    def _metadata_items(self) -> list[tuple[str, str]]:
        items = []
        for key, value in self.metadata.items():
            safe = _json_safe(value)
            items.append((key, safe if isinstance(safe, str) else repr(safe)))
        return items

    def text(self) -> str:
        """Return the plain-text body.

        It names the model, segment, metric, baseline, current value with its interval,
        relative change, severity, type, p-values, timestamp, batch id and metadata.

        Examples
        --------
        >>> a = Alert(model="churn", metric="accuracy", alert_type="performance_degradation",
        ...           severity="critical", baseline=0.91, current=0.7, ci_lower=0.68,
        ...           ci_upper=0.72, relative_change=-0.2308, metadata={"owner": "ds-team"})
        >>> body = a.text()
        >>> "Current:          0.7 (interval 0.68 to 0.72)" in body
        True
        >>> "  owner: ds-team" in body
        True
        """
        lines = [self.subject(), ""]
        if self.message.strip():
            lines += [self.message.strip(), ""]
        width = max(len(label) for label, _ in self._facts()) + 2
        for label, value in self._facts():
            lines.append(f"{label + ':':<{width}}{value}")
        meta = self._metadata_items()
        if meta:
            lines.append("Metadata:")
            lines += [f"  {key}: {value}" for key, value in meta]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """Return an HTML body with the same facts as :meth:`text`.

        Every string, user-supplied or not, goes through :func:`html.escape`.

        Examples
        --------
        >>> a = Alert(model="<b>m</b>", alert_type="low_performance", severity="minor",
        ...           metadata={"note": "<script>alert(1)</script>"})
        >>> "<script>" in a.html()
        False
        >>> "&lt;script&gt;alert(1)&lt;/script&gt;" in a.html()
        True
        """
        esc = html.escape
        colour = {"minor": "#b58900", "moderate": "#cb4b16", "critical": "#dc322f"}[self.severity]
        parts = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{esc(self.subject())}</title></head>",
            '<body style="font-family: sans-serif">',
            f'<h2 style="color: {colour}">{esc(self.subject())}</h2>',
        ]
        if self.message.strip():
            message = esc(self.message.strip()).replace("\n", "<br>\n")
            parts.append(f'<p class="message">{message}</p>')
        parts.append('<table class="facts" style="border-collapse: collapse">')
        for label, value in self._facts():
            parts.append(
                f'<tr><th style="text-align: left; padding-right: 1em">{esc(label)}</th>'
                f"<td>{esc(value)}</td></tr>"
            )
        parts.append("</table>")
        meta = self._metadata_items()
        if meta:
            parts.append('<h3>Metadata</h3><table class="metadata">')
            for key, value in meta:
                parts.append(f"<tr><th>{esc(key)}</th><td>{esc(value)}</td></tr>")
            parts.append("</table>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of handing one alert to one channel (or of running a retraining hook).

    Parameters
    ----------
    channel : str
        Name of the channel (or hook).
    status : str
        ``"delivered"`` or ``"failed"``.
    error : str or None
        Why delivery failed; ``None`` when delivered.
    attempted_at : datetime
        When delivery was attempted (UTC).
    alert_id : str or None
        The alert delivered (set by the outbox delivery).

    Examples
    --------
    >>> r = DeliveryResult(channel="log", status="delivered")
    >>> r.ok, r.error
    (True, None)
    """

    channel: str
    status: str
    error: str | None = None
    attempted_at: datetime = field(default_factory=_utcnow)
    alert_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in DELIVERY_STATUSES:
            raise ValidationError(
                f"DeliveryResult: status must be one of {DELIVERY_STATUSES}, got {self.status!r}",
                parameter="status",
            )

    @property
    def ok(self) -> bool:
        """``True`` when the alert was delivered."""
        return self.status == "delivered"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dictionary (``attempted_at`` as ISO 8601)."""
        return {
            "channel": self.channel,
            "status": self.status,
            "error": self.error,
            "attempted_at": self.attempted_at.isoformat(),
            "alert_id": self.alert_id,
        }
