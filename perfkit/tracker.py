"""The seed's facade: :class:`ModelPerformanceTracker` and :class:`ProductionMonitor`.

A thin layer over the pure parts: validation and states (:mod:`perfkit.metrics`), the
history store (:mod:`perfkit.store`), degradation detection (:mod:`perfkit.analysis`) and
the alert policy (:mod:`perfkit.alerts`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfkit._checks import check_days, check_name, check_timestamp
from perfkit._checks import check_metadata as _check_metadata
from perfkit.alerts import Alert, Channel, DeliveryResult, channel_from_config
from perfkit.alerts.policy import HOOK_CHANNEL, AlertManager, AlertOutcome
from perfkit.analysis.degradation import DegradationAnalysis, assess
from perfkit.config import PerformanceConfig, load_config
from perfkit.exceptions import (
    InputTypeError,
    LabelError,
    ModelIdentityError,
    ShapeError,
    StateError,
    UnknownTaskError,
    ValidationError,
)
from perfkit.metrics import (
    CUSTOM_METRICS,
    MetricReport,
    MetricValue,
    Moments,
    calibrate,
    compute_state,
    concept_drift_check,
    estimate,
    evaluate,
    performance_score,
    state_from_dict,
)
from perfkit.metrics.layout import sorted_labels
from perfkit.metrics.registry import prefetch_dirichlet
from perfkit.metrics.state import State, align_classes, confusion_hook, merge_dicts_to_state
from perfkit.store import BatchRecord, Store, open_store

__all__ = ["ModelPerformanceTracker", "ProductionMonitor", "TrackingResult"]

logger = logging.getLogger("perfkit")

from perfkit.store import ALL_SEGMENTS as _ALL  # noqa: E402

_UNREAD = object()  # a prefetched read that was not made
_READER: ThreadPoolExecutor | None = None  # one thread for the tracking call's store reads


def _forget_reader() -> None:  # a forked child has no reader thread: start its own
    global _READER
    _READER = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_reader)


def _reader() -> ThreadPoolExecutor:
    global _READER
    if _READER is None:
        _READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perfkit-reads")
    return _READER


@dataclass(frozen=True)
class _Before:
    """What :meth:`Store.previous_metrics` reads of the batch it looks before."""

    timestamp: datetime
    id: int | None


@dataclass(frozen=True)
class _BaselineKey:
    """What the tracker reads of a stored baseline it has decoded already."""

    id: int
    version: int
    segment: str | None


def _as_utc(ts: Any, parameter: str = "timestamp") -> datetime:
    return check_timestamp(ts, parameter, none_is_now=True)


def _check_name(value: Any, parameter: str) -> str | None:
    return check_name(value, parameter, optional=True)


def _overflowed(d: Mapping[str, Any]) -> bool:
    """A stored regression state whose moments left the float range (metrics NaN, reason overflow)."""
    if d.get("kind") != "regression":
        return False

    def finite(x: Any) -> bool:
        if isinstance(x, float):
            return math.isfinite(x)
        if isinstance(x, (list, tuple)):
            return all(finite(v) for v in x)
        if isinstance(x, Mapping):
            return all(finite(v) for v in x.values())
        return True

    return not finite(dict(d))


def _identity_from_dicts(dicts: list[dict]) -> dict[str, Any] | None:
    """Identity implied by stored state dicts (stores written before model identities)."""
    if not dicts:
        return None
    first = dicts[0]
    if first.get("kind") != "classification":
        return {"task": "regression", "classes": None, "positive_label": None, "has_scores": None}
    same = [d for d in dicts if d.get("kind") == "classification" and d.get("task") == first["task"]]
    if first["task"] == "binary":
        classes = list(first["classes"])
        return {"task": "binary", "classes": classes, "positive_label": classes[int(first["positive_index"])],
                "has_scores": any(d.get("hist_neg") is not None for d in same)}
    try:
        classes = list(sorted_labels({c for d in same for c in d["classes"]}))
    except LabelError:
        classes = list(first["classes"])
    return {"task": "multiclass", "classes": classes, "positive_label": None,
            "has_scores": any(d.get("hist_neg") is not None for d in same)}


def _same_predictions(stored: Mapping[str, Any], state: State) -> bool:
    """Whether a stored pending state holds the prediction part of ``state``: the same
    predictions, in any row order. Counts compare exactly,
    moments up to rounding (their sums depend on the row order and, for regression, on the
    pass that computed them). Undecidable cases (a state that does not decode, a label set
    grown since) say True and leave the refusal, if any, to the write."""
    try:
        pending = state_from_dict(dict(stored))
        if pending.task != state.task or (state.task != "regression" and pending.classes != state.classes):
            return True  # (a label set grown since: its new columns were not in the pending rows)
        mine = state.prediction_part()
        return all(_same_part(getattr(pending, f.name), getattr(mine, f.name)) for f in dataclasses.fields(mine))
    except (StateError, ValidationError, TypeError, ValueError, KeyError):
        return True


def _same_part(a: Any, b: Any) -> bool:
    if isinstance(a, Moments):
        if not isinstance(b, Moments) or a.n != b.n:
            return False
        spread = math.sqrt(max(a.m2, 0.0) / a.n) if a.n else 0.0
        return (math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-9 * spread + 1e-300)
                and math.isclose(a.m2, b.m2, rel_tol=1e-9, abs_tol=1e-300)
                and math.isclose(a.m4, b.m4, rel_tol=1e-9, abs_tol=1e-300))  # (M3 may cancel to ~0)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same_part, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    if hasattr(a, "equals"):
        return a.equals(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _new_class_notes(ident: Mapping[str, Any] | None, state: State) -> tuple[str, ...]:
    if ident is None or state.task != "multiclass" or not ident.get("classes"):
        return ()
    return tuple(f"new class {c!r}" for c in state.classes if c not in ident["classes"])


def _describe(state: State) -> str:
    if state.task == "regression":
        return "a regression batch"
    return f"a {state.task} batch with labels {list(state.classes)}"


def _identity_error(model: str, ident: Mapping[str, Any], state: State, got: str | None = None,
                    hint: str | None = None) -> ModelIdentityError:
    """The refusal of ``state`` (described as ``got``, default :func:`_describe`) by a model of
    identity ``ident``; by default a multiclass batch sent to a binary model gets the hint
    that a binary model cannot grow a third class."""
    labels = "" if ident["task"] == "regression" else f" with labels {ident['classes']}"
    got = _describe(state) if got is None else got
    if hint is None:
        hint = ("; a binary model cannot grow a third class: declare every class up front with classes=[...]"
                if ident["task"] == "binary" and state.task == "multiclass" else "")
    return ModelIdentityError(
        f"model {model!r} is a {ident['task']} model{labels}; refusing {got} (nothing was written){hint}",
        parameter="y_true",
    )


def _identity_of(state: State) -> dict[str, Any]:
    if state.task == "regression":
        return {"task": "regression", "classes": None, "positive_label": None, "has_scores": None}
    return {"task": state.task, "classes": list(state.classes),
            "positive_label": state.classes[state.positive_index] if state.task == "binary" else None,
            "has_scores": bool(state.has_scores)}


def _merge_identity(model: str, current: Mapping[str, Any] | None, state: State) -> dict[str, Any] | None:
    """The model identity after ``state`` (None: unchanged); raises ModelIdentityError."""
    new = _identity_of(state)
    if current is None:
        return new
    if current["task"] != new["task"]:  # the third-class hint only for a multiclass batch
        raise _identity_error(model, current, state)
    if new["task"] == "regression":
        return None
    if new["task"] == "binary":
        if current["classes"] != new["classes"] or current.get("positive_label") != new["positive_label"]:
            hint = (f"; the model's positive label is {current.get('positive_label')!r}"
                    if current["classes"] == new["classes"] else "")
            raise _identity_error(model, current, state, _describe(state) + f" (positive {new['positive_label']!r})",
                                  hint)
        scores = bool(current.get("has_scores")) or new["has_scores"]
        return None if scores == current.get("has_scores") else {**current, "has_scores": scores}
    if not set(current["classes"]) <= set(new["classes"]):
        grown = list(sorted_labels({*current["classes"], *new["classes"]}))
        return {**current, "classes": grown, "has_scores": bool(current.get("has_scores")) or new["has_scores"]}
    scores = bool(current.get("has_scores")) or new["has_scores"]
    if current["classes"] == new["classes"] and scores == current.get("has_scores"):
        return None
    return {**current, "classes": new["classes"], "has_scores": scores}


def _outcome(alert: Alert, plan: Any, results: list[DeliveryResult]) -> AlertOutcome:
    mine = tuple(r for r in results if r.alert_id == plan.alert_id)
    status = plan.status
    if status == "pending":
        if any(r.status == "failed" for r in mine):
            status = "failed"
        elif mine and all(r.status == "delivered" for r in mine):
            status = "delivered"
    return AlertOutcome(alert, status, suppressed_by=plan.suppressed_by, deliveries=mine)


def _segment_groups(segments: Any, n: int) -> list[tuple[str, Any]]:
    """``[(segment name, row indices)]`` in order of first appearance; raises ValidationError."""
    import numpy as np

    if isinstance(segments, (str, bytes, Mapping)) or not isinstance(segments, Iterable):
        raise ValidationError(f"segments must be one label per row (a list, array or Series), got "
                              f"{type(segments).__name__}", parameter="segments")
    labels = segments.to_numpy(dtype=object) if isinstance(segments, (pd.Series, pd.Index)) else \
        np.asarray(list(segments) if not isinstance(segments, np.ndarray) else segments, dtype=object)
    if labels.ndim != 1:
        raise ValidationError(f"segments must be 1-D, got shape {labels.shape}", parameter="segments")
    if len(labels) != n:
        raise ValidationError(f"segments has {len(labels)} labels but the batch has {n} rows",
                              parameter="segments")
    missing = pd.isna(labels)
    if missing.any():
        raise ValidationError(f"segments has {int(missing.sum())} missing label(s) (None / NaN), first at row "
                              f"{int(np.argmax(missing))}; give every row a segment", parameter="segments")
    codes, uniq = pd.factorize(labels)
    names = []
    for u in uniq:
        if isinstance(u, (bool, np.bool_)) or not isinstance(u, (str, int, np.integer)):
            raise ValidationError(f"segment labels must be str or int, got {type(u).__name__} {u!r}",
                                  parameter="segments")
        names.append(check_name(str(u), "segments"))
    if len(set(names)) != len(names):
        raise ValidationError("segments has labels that are equal as text (e.g. 1 and '1')", parameter="segments")
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(names)))[:-1]
    return list(zip(names, np.split(order, bounds), strict=True))


def _rows_view(x: Any) -> Any:
    """An input array whose rows can be taken by position (DataFrames / Series keep labels)."""
    import numpy as np

    if x is None or isinstance(x, (pd.DataFrame, pd.Series, np.ndarray)):
        return x
    return np.asarray(x)


def _take(x: Any, idx: Any) -> Any:
    return x.iloc[idx] if isinstance(x, (pd.DataFrame, pd.Series)) else x[idx]


@dataclass(frozen=True)
class TrackingResult(Mapping[str, Any]):
    """What :meth:`ModelPerformanceTracker.track_performance` returns (immutable).

    Supports the seed's dict-style access: ``result['performance_score']``,
    ``result['metrics']`` (``{name: MetricValue}`` with ``value``, ``ci_lower``,
    ``ci_upper``), ``result['sample_count']``, ``result['degradation_analysis']``.
    A call with per-row ``segments=`` also carries ``segment_metrics`` (``{segment:
    MetricReport}``) and ``segment_record_ids``; its one ``degradation_analysis`` holds the
    findings of the whole batch and of every segment (``finding.segment``).
    """

    batch_id: str
    model: str
    segment: str | None
    model_version: str | None
    timestamp: datetime
    task: str
    sample_count: int
    performance_score: float
    metrics: MetricReport
    labels_pending: bool
    degradation_analysis: DegradationAnalysis
    alert_outcomes: tuple[AlertOutcome, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    record_id: int | None = None
    state: Any = None
    notes: tuple[str, ...] = ()
    estimated_metrics: MetricReport | None = None
    concept_drift: Any = None
    segment_metrics: Mapping[str, MetricReport] = field(default_factory=dict)
    segment_record_ids: Mapping[str, int | None] = field(default_factory=dict)

    _KEYS = (
        "batch_id", "model", "segment", "model_version", "timestamp", "task", "sample_count",
        "performance_score", "metrics", "labels_pending", "degradation_analysis", "alerts",
        "metadata", "record_id", "notes", "estimated_metrics", "concept_drift", "segment_metrics",
        "segment_record_ids",
    )

    @property
    def alerts(self) -> list[Alert]:
        return [o.alert for o in self.alert_outcomes]

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        score = self.performance_score
        return {
            "batch_id": self.batch_id,
            "model": self.model,
            "segment": self.segment,
            "model_version": self.model_version,
            "timestamp": self.timestamp.isoformat(),
            "task": self.task,
            "sample_count": self.sample_count,
            "performance_score": score if math.isfinite(score) else None,
            "metrics": self.metrics.to_dict(),
            "labels_pending": self.labels_pending,
            "degradation_analysis": self.degradation_analysis.to_dict(),
            "alerts": [o.to_dict() for o in self.alert_outcomes],
            "metadata": dict(self.metadata),
            "record_id": self.record_id,
            "notes": list(self.notes),
            "estimated_metrics": None if self.estimated_metrics is None else self.estimated_metrics.to_dict(),
            "concept_drift": None if self.concept_drift is None else self.concept_drift.to_dict(),
            "segment_metrics": {k: v.to_dict() for k, v in self.segment_metrics.items()},
            "segment_record_ids": dict(self.segment_record_ids),
        }

    def to_frame(self) -> pd.DataFrame:
        return self.metrics.to_frame()

    def _repr_html_(self) -> str:
        import html

        da = self.degradation_analysis
        flag = "degradation detected" if da.degradation_detected else "no degradation"
        return (
            f"<div><b>{html.escape(self.model)}</b> batch {html.escape(self.batch_id)} "
            f"({self.sample_count} rows, score {self.performance_score:.3f}, {flag})</div>"
            + self.metrics._repr_html_()
        )


class ModelPerformanceTracker:
    """Track model performance per batch into a durable store, with degradation alerts.

    Parameters
    ----------
    config_path : path-like, optional
        YAML with a ``model_performance:`` section (the seed's block loads unchanged).
        Default: ``$PERFKIT_CONFIG``, else ``config/main_config.yaml`` if it exists, else
        built-in defaults.
    store : Store or str, optional
        A :class:`perfkit.store.Store` or SQLAlchemy URL. Default: the config's store URL
        (a SQLite file under ``data/performance/`` of the working directory).
    config : PerformanceConfig, optional
        A ready configuration (instead of ``config_path``).
    model : str, optional
        Default model name (else the config's ``model_name``).
    channels : sequence of Channel, optional
        Extra delivery channels (for example :class:`perfkit.alerts.CallbackChannel`).
    retraining_hook : callable, str or list, optional
        Called for retraining triggers (overrides the config's ``retraining_hook``).

    Notes
    -----
    ``performance_score`` is one number in [0, 1] (higher is better): for classification the
    mean of accuracy, macro F1 and ROC AUC (those defined); for regression R² clipped to
    [0, 1]. Alerts use each metric on its own; the score only drives the
    ``low_performance`` alert (score below ``low_performance_threshold``, default 0.5).

    Without an explicit baseline, the merge of the first ``baseline_batches`` (default 5)
    labelled batches of a model / segment becomes its baseline; later batches are compared
    with it.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> tracker = ModelPerformanceTracker(store=os.path.join(d, "perf.db"), model="churn")
    >>> r = tracker.track_performance([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1])
    >>> r["sample_count"], round(r["metrics"]["accuracy"].value, 2)
    (4, 0.75)
    >>> tracker.get_performance_summary(days=1)["total_records"]
    1
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        config: PerformanceConfig | None = None,
        model: str | None = None,
        channels: Iterable[Channel] | None = None,
        retraining_hook: Callable[[Alert], Any] | str | list[str] | None = None,
    ) -> None:
        if config is not None and config_path is not None:
            raise ValidationError("pass config_path or config, not both", parameter="config")
        self.config = config if config is not None else load_config(config_path)
        self.model = _check_name(model, "model") or self.config.model_name
        if store is None:
            store = self.config.store_url
        if isinstance(store, str) and "://" not in store:
            store = Path(store)  # a plain path is a SQLite file
        self.store = store if isinstance(store, Store) else open_store(store)
        self._channels = self._build_channels(list(channels or []))
        self._baseline_cache: dict[tuple, tuple[MetricReport, int]] = {}
        self._legacy_identity: dict[str, dict | None] = {}
        self.alert_manager = AlertManager(
            self.store,
            self._channels,
            cooldown_hours=self.config.alert_cooldown_hours,
            retraining_hook=retraining_hook if retraining_hook is not None else self.config.retraining_hook,
        )

    # ------------------------------------------------------------------ set-up
    def _build_channels(self, extra: list[Channel]) -> list[Channel]:
        out: list[Channel] = []
        cfg = self.config
        for kind in cfg.alert_channels:
            if kind == "log":
                out.append(channel_from_config("log"))
            elif kind == "file":
                out.append(channel_from_config("file", path=cfg.storage.alerts_file))
            elif kind == "email":
                e = cfg.email
                if not e.configured:
                    logger.warning(
                        "alert channel 'email' is listed but model_performance.email (host, sender, "
                        "recipients) is not configured; email alerts are disabled"
                    )
                    continue
                out.append(
                    channel_from_config(
                        "email", host=e.host, port=e.port, sender=e.sender, recipients=list(e.recipients),
                        security=e.security, username=e.username,
                        password_env=e.password_env if e.username else None,
                        timeout=e.timeout,
                    )
                )
            elif kind == "webhook":
                url = cfg.webhook.resolved_url()
                if not url:
                    logger.warning("alert channel 'webhook' is listed but no URL is set (PERFKIT_WEBHOOK_URL)")
                    continue
                out.append(channel_from_config("webhook", url=url, format=cfg.webhook.format, timeout=cfg.webhook.timeout))
        names = {c.name for c in out}
        for c in extra:
            if not isinstance(c, Channel):
                raise InputTypeError(f"channels must be Channel objects, got {type(c).__name__}", parameter="channels")
            if c.name in names:
                raise ValidationError(f"two channels named {c.name!r}", parameter="channels")
            names.add(c.name)
            out.append(c)
        return out

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels)

    # ------------------------------------------------------------------ tracking
    def _custom_metrics(self, y_true, y_pred, y_pred_proba, task: str) -> dict[str, MetricValue]:
        out: dict[str, MetricValue] = {}
        if y_true is None:
            return out
        for name, cm in CUSTOM_METRICS.items():
            if task not in cm.tasks:
                continue
            out[name] = self._run_custom(name, lambda cm=cm: cm.func(y_true, y_pred, y_pred_proba), cm.higher_is_better)
        hook = getattr(self, "_calculate_custom_metrics", None)
        if hook is not None:
            try:
                extra = hook(y_true, y_pred, y_pred_proba) or {}
            except Exception as exc:  # noqa: BLE001 - user code: a failing custom metric must not lose the batch
                logger.warning("_calculate_custom_metrics failed: %s", exc)
                extra = {}
            for name, v in dict(extra).items():
                out[str(name)] = self._run_custom(str(name), lambda v=v: v, None)
        return out

    @staticmethod
    def _run_custom(name: str, fn: Callable[[], Any], hib: bool | None) -> MetricValue:
        try:
            v = fn()
            value = float(v) if v is not None else math.nan
            reason = None if v is not None else "custom_metric_returned_none"
        except Exception as exc:  # noqa: BLE001 - user code: record why, keep the batch
            value, reason = math.nan, f"custom_metric_failed:{type(exc).__name__}: {exc}"
            logger.warning("custom metric %s failed: %s", name, exc)
        return MetricValue(name, value, reason=reason, method="custom", higher_is_better=hib)

    def track_performance(
        self,
        y_true: Any,
        y_pred: Any = None,
        y_pred_proba: Any = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        timestamp: Any = None,
        model: str | None = None,
        segment: str | None = None,
        model_version: str | None = None,
        batch_id: str | None = None,
        task: str | None = None,
        classes: Any = None,
        positive_label: Any = None,
        segments: Any = None,
    ) -> TrackingResult:
        """Compute, store and check one batch.

        Parameters
        ----------
        y_true : array-like or None
            True labels / values; ``None`` when the labels have not arrived yet (only the
            prediction distribution is stored; a later call with the same ``batch_id`` and
            the labels completes the record instead of adding a second one).
        y_pred, y_pred_proba : array-like
            Predictions and (classification) probabilities, see :func:`perfkit.metrics.compute_state`.
        metadata : dict, optional
            JSON-serializable. ``model_version`` and ``batch_id`` in it are used when the
            keyword arguments are not given.
        timestamp : datetime, optional
            Timezone-aware time of the batch (for backfills); default now (UTC).
        model, segment, model_version, batch_id : str, optional
        task, classes, positive_label : optional
            See :func:`perfkit.metrics.compute_state`.
        segments : array-like of shape (n,), optional
            One segment label per row (str, or integers, stored as their ``str``). The whole
            batch (segment None) and every segment are computed in one pass, stored as one
            record each in ONE transaction (same ``batch_id``; ``metadata["call_id"]`` links
            them), and tested as ONE family: the whole model's metrics get half of the
            family's weight, the segments share the other half (see
            :func:`perfkit.analysis.decide`). A segment without a baseline of its own is
            compared with the model's baseline. Needs the labels (``y_true``); not combined
            with ``segment=``; None / NaN / blank labels are refused. Custom metrics are
            computed for the whole batch only.

        Returns
        -------
        TrackingResult

        Raises
        ------
        ValidationError, InputTypeError
            Bad input, before anything is written (also: completing a pending batch with
            another number of rows, or with other predictions than it was tracked with; the
            same predictions in another row order are accepted).
        ModelIdentityError
            The batch cannot be this model's (another task, or a third class for a binary
            model); the message names the model's task and labels. Nothing is written.
        StoreError
            The store failed (nothing was written: the batch, its baseline bootstrap and its
            alerts are one transaction).

        Notes
        -----
        The batch is encoded in the model's label set (a batch missing a class stays the
        model's multiclass batch; a new class extends the set, see ``notes``). Alerts are
        delivered after the commit, waiting at most ``delivery_deadline_seconds`` in total;
        the rest stays pending for the next call or :meth:`deliver_pending`.
        """
        meta = _check_metadata(metadata)
        ts = _as_utc(timestamp)
        model = self._model(model)
        segment = _check_name(segment, "segment")
        if model_version is None and meta.get("model_version") is not None:
            model_version = str(meta["model_version"])
        model_version = _check_name(model_version, "model_version")
        bid = batch_id if batch_id is not None else meta.get("batch_id")
        bid = _check_name(str(bid) if bid is not None else None, "batch_id")

        if segments is not None and segment is not None:
            raise ValidationError("pass segment= (one name for the batch) or segments= (one label per row), "
                                  "not both", parameter="segments")
        if segments is not None and y_true is None:
            raise ValidationError("segments= needs the labels (y_true); track pending batches without it",
                                  parameter="segments")

        task, classes = self._declared(model, task, classes)
        # the decision's store reads run beside the state computation (its compiled kernels
        # release the GIL); a labelled plain batch only
        reads = self._prefetch(model, segment, ts) if y_true is not None and segments is None else None
        try:
            # a labelled classification batch: the evaluation's bootstrap draws start on a
            # worker thread as soon as its confusion matrix is counted
            with confusion_hook(prefetch_dirichlet):
                state, notes = self._model_state(model, y_true, y_pred, y_pred_proba, task=task, classes=classes,
                                                 positive_label=positive_label)
        except BaseException:
            if reads is not None:
                reads.cancel()
            raise
        groups = _segment_groups(segments, state.n) if segments is not None else None
        # a classification state's stored form is encoded on the reader thread while this
        # one evaluates (mostly waiting for the bootstrap draws, without the GIL)
        encoded = _reader().submit(state.to_dict) if reads is not None and state.task != "regression" else None
        report = evaluate(state, level=self.config.confidence_level)
        custom = self._custom_metrics(y_true, y_pred, y_pred_proba, state.task)
        if custom:
            report = MetricReport(task=report.task, level=report.level, n=report.n, values={**report.values, **custom})
        score = performance_score(report, state.task)
        record = BatchRecord(
            model=model,
            timestamp=ts,
            task=state.task,
            state=encoded.result() if encoded is not None else state.to_dict(),
            metrics={k: v.to_dict() for k, v in report.items()},
            sample_count=state.n,
            segment=segment,
            model_version=model_version,
            performance_score=score if math.isfinite(score) else None,
            labels_pending=not state.labelled,
            metadata=meta,
            **({"batch_id": bid} if bid is not None else {}),
        )
        if groups is not None:
            return self._track_segments(record, state, report, score, meta, notes, groups,
                                        (y_true, y_pred, y_pred_proba))
        return self._check(record, state, report, score, meta, notes, given_id=bid is not None,
                           prefetched=reads.result() if reads is not None else None)

    # ------------------------------------------------------------------ one call, many segments
    def _segment_states(self, state: State, groups: list[tuple[str, Any]], arrays: tuple) -> list[State]:
        """Each segment's state from its rows, in the batch's task and label set (the whole
        batch was validated first, so these cannot fail for another reason)."""
        y_true, y_pred, y_pred_proba = (_rows_view(a) for a in arrays)
        kw: dict[str, Any] = {"task": state.task}
        if state.task != "regression":
            kw["classes"] = list(state.classes)
            if state.task == "binary":
                kw["positive_label"] = state.classes[state.positive_index]
        return [compute_state(*(None if a is None else _take(a, idx) for a in (y_true, y_pred, y_pred_proba)), **kw)
                for _, idx in groups]

    def _track_segments(self, record: BatchRecord, state: State, report: MetricReport, score: float,
                        meta: Mapping[str, Any], notes: tuple[str, ...], groups: list[tuple[str, Any]],
                        arrays: tuple) -> TrackingResult:
        """The whole batch and every segment: states, one family of tests, one write."""
        level = self.config.confidence_level
        states = self._segment_states(state, groups, arrays)
        reports = [evaluate(st, level=level) for st in states]
        call = {**dict(record.metadata), "call_id": record.batch_id}
        record = dataclasses.replace(record, metadata={**call, **({"notes": list(notes)} if notes else {})})
        seg_records = []
        for (name, _), st, rep in zip(groups, states, reports, strict=True):
            sc = performance_score(rep, st.task)
            seg_records.append(BatchRecord(
                model=record.model, timestamp=record.timestamp, task=st.task, state=st.to_dict(),
                metrics={k: v.to_dict() for k, v in rep.items()}, sample_count=st.n, segment=name,
                model_version=record.model_version, performance_score=sc if math.isfinite(sc) else None,
                labels_pending=False, metadata=call, batch_id=record.batch_id,
            ))
        cfg = self.config
        names = [m for m in cfg.metrics_to_track if m in report]
        baseline, new_baseline = self._baseline_for(record.model, None, state)
        model_base = baseline[0] if baseline is not None else None
        seg_groups = []
        for (name, _), st, rep, rec in zip(groups, states, reports, seg_records, strict=True):
            own = self._baseline_row(record.model, name)
            base = model_base
            if own is not None:
                b_state, b_report, version = self._decoded_baseline((record.model, name, own.id), own)
                comparable = self._comparable(record.model, b_state, b_report, st, version)
                base = comparable[0] if comparable is not None else None
            if base is not None:
                seg_groups.append((name, rep, base, self._window_entries(record.model, name, rec)))
        analysis = DegradationAnalysis(False, (), performance_score=score, settings=cfg.detection)
        if model_base is not None or seg_groups:
            analysis = assess(
                report, model_base, cfg.detection, model=record.model, timestamp=record.timestamp,
                segment=None, batch_id=record.batch_id, model_version=record.model_version,
                performance_score=score, metadata=meta, metrics=names,
                baseline_version=baseline[1] if baseline is not None else None,
                window_entries=self._window_entries(record.model, None, record) if model_base is not None else None,
                segments=seg_groups,
            )
        written, outcomes = self._write_and_deliver(record, state, new_baseline, analysis, seg_records)
        stored = written.record
        return TrackingResult(
            batch_id=stored.batch_id, model=stored.model, segment=None, model_version=stored.model_version,
            timestamp=stored.timestamp, task=state.task, sample_count=state.n, performance_score=score,
            metrics=report, labels_pending=False, degradation_analysis=analysis, alert_outcomes=outcomes,
            metadata=meta, record_id=stored.id, state=state, notes=notes,
            segment_metrics={name: rep for (name, _), rep in zip(groups, reports, strict=True)},
            segment_record_ids={r.segment: r.id for r in written.segment_records},
        )

    # ------------------------------------------------------------------ model identity
    def _declared(self, model: str, task: Any, classes: Any) -> tuple[Any, Any]:
        """The task / label set declared in the config (``model_task``, ``model_classes``) for
        the tracker's own model, unless the call gives its own."""
        if model != self.model:
            return task, classes
        if classes is None and self.config.model_classes is not None:
            classes = list(self.config.model_classes)
        if task is None and self.config.model_task is not None:
            task = self.config.model_task
        return task, classes

    def _model_state(self, model: str, y_true, y_pred, y_pred_proba, *, task, classes,
                     positive_label) -> tuple[State, tuple[str, ...]]:
        """The batch's state encoded in the model's label set (refused before any write if the
        batch cannot be the model's), and notes such as "new class 'd'"."""
        if task == "regression" and classes is None:
            # a declared regression batch's state does not depend on the stored identity: read
            # it on the reader thread meanwhile, then check it (a classifier's store refuses)
            ident_read = _reader().submit(self._identity, model)
            try:
                state = compute_state(y_true, y_pred, y_pred_proba, task="regression")
            except BaseException:
                ident_read.cancel()  # (a read: if it already runs, it just ends unread)
                raise
            ident = ident_read.result()
            if ident is not None:
                _merge_identity(model, ident, state)  # raises for a classifier
            return state, ()
        ident = self._identity(model)
        if ident is None or classes is not None or (task is not None and task != ident["task"]):
            state = compute_state(y_true, y_pred, y_pred_proba, task=task, classes=classes,
                                  positive_label=positive_label)
            if ident is not None:
                _merge_identity(model, ident, state)  # raises for another task / label set
            return state, _new_class_notes(ident, state)
        if ident["task"] == "regression":
            return compute_state(y_true, y_pred, y_pred_proba, task="regression"), ()
        known = ident["classes"]
        pos = positive_label if positive_label is not None else ident.get("positive_label")
        try:
            state = compute_state(y_true, y_pred, y_pred_proba, task=ident["task"], classes=known,
                                  positive_label=pos if ident["task"] == "binary" else None)
        except (LabelError, ShapeError) as exc:
            try:  # a class the model has not seen yet? (or a batch of another task)
                alone = compute_state(y_true, y_pred, y_pred_proba, task=task, positive_label=positive_label)
            except (LabelError, ShapeError, UnknownTaskError, ValidationError):
                raise exc from None
            if alone.task == "regression" or ident["task"] == "binary":
                raise _identity_error(model, ident, alone) from exc
            grown = list(sorted_labels({*known, *alone.classes}))
            state = compute_state(y_true, y_pred, y_pred_proba, task="multiclass", classes=grown)
        notes = _new_class_notes(ident, state)
        for note in notes:
            logger.warning("model %r: %s added to its label set %s", model, note, known)
        return state, notes

    def _identity(self, model: str) -> dict[str, Any] | None:
        """The model's stored identity; for a store written before identities existed, the one
        its stored batches imply (read once, written with the next batch)."""
        ident = self.store.model_identity(model)
        if ident is None:
            ident = _identity_from_dicts([d for _, d in self.store.states(model, include_pending=True)])
            self._legacy_identity[model] = ident
        return ident

    def _resolve_identity(self, model: str, current: dict | None, state: State) -> dict | None:
        """Inside the write transaction: the identity to store after ``state`` (None: unchanged)."""
        if current is not None:
            return _merge_identity(model, current, state)
        legacy = self._legacy_identity.get(model)  # read before the transaction, see _identity
        return _merge_identity(model, legacy, state) or legacy

    # ------------------------------------------------------------------ the tracking transaction
    def _check(self, record: BatchRecord, state: State, report: MetricReport, score: float,
               meta: Mapping[str, Any], notes: tuple[str, ...] = (), *, given_id: bool = True,
               prefetched: tuple | None = None) -> TrackingResult:
        """Compare with the baseline, write batch + findings + alerts in ONE transaction, deliver."""
        analysis = DegradationAnalysis(False, (), performance_score=score, settings=self.config.detection)
        new_baseline = None
        estimated, drift = self._estimate(record, state, report, self._completes(record, state, given_id))
        # kept with the batch, so summaries and reports can say it: "new class 'd'", and the
        # label-free estimate next to the realized values
        extra = {**({"notes": list(notes)} if notes else {}),
                 **({"estimated_metrics": {k: v.to_dict() for k, v in estimated.items()}}
                    if estimated is not None else {})}
        if extra:
            record = dataclasses.replace(record, metadata={**dict(record.metadata), **extra})
        if not state.labelled and estimated is not None:
            base_report = self._baseline_cache_report(record.model, record.segment, state)
            if base_report is not None:
                analysis = assess(
                    estimated, base_report[0], self.config.detection, model=record.model,
                    timestamp=record.timestamp, segment=record.segment, batch_id=record.batch_id,
                    model_version=record.model_version, metadata=meta,
                    metrics=[m for m in self.config.metrics_to_track if m in estimated],
                    baseline_version=base_report[1], alert_type="estimated_performance_degradation",
                )
        if state.labelled:
            b, previous = prefetched[:2] if prefetched is not None else (_UNREAD, _UNREAD)
            baseline, new_baseline = self._baseline_for(record.model, record.segment, state, b)
            if baseline is not None:
                base_report, version = baseline
                analysis = assess(
                    report, base_report, self.config.detection, model=record.model, timestamp=record.timestamp,
                    segment=record.segment, batch_id=record.batch_id, model_version=record.model_version,
                    performance_score=score, metadata=meta,
                    metrics=[m for m in self.config.metrics_to_track if m in report], baseline_version=version,
                    window_entries=self._window_entries(record.model, record.segment, record, previous),
                )
        if drift is not None and drift.suspected:
            analysis = dataclasses.replace(analysis, alerts=(*analysis.alerts, self._drift_alert(record, drift)))
        written, outcomes = self._write_and_deliver(record, state, new_baseline, analysis,
                                                    backlog=prefetched[2] if prefetched is not None else None)
        stored = written.record
        return TrackingResult(
            batch_id=stored.batch_id, model=stored.model, segment=stored.segment,
            model_version=stored.model_version, timestamp=stored.timestamp, task=state.task,
            sample_count=state.n, performance_score=score, metrics=report, labels_pending=not state.labelled,
            degradation_analysis=analysis, alert_outcomes=outcomes, metadata=meta, record_id=stored.id,
            state=state, notes=notes, estimated_metrics=estimated, concept_drift=drift,
        )

    def _write_and_deliver(self, record, state: State, new_baseline, analysis, segment_records=(),
                           backlog: bool | None = None):
        """One write transaction (record, segment records, baseline, alerts), then delivery of
        the alerts it made pending (or of an older backlog; ``backlog=False``: a read made
        before the transaction found none waiting). Returns (written, outcomes)."""
        manager = self.alert_manager
        written = self.store.write_tracked(
            record,
            identity=lambda current: self._resolve_identity(record.model, current, state),
            baseline=new_baseline,
            alerts_=[(a.to_dict(), manager.channels_for(a)) for a in analysis.alerts],
            policy=manager,
            segment_records=segment_records,
        )
        pending = [p.alert_id for p in written.alerts if p.status == "pending"]
        results = manager.deliver(pending, deadline=self.config.delivery_deadline_seconds) if pending else []
        if not pending and backlog is not False:
            self._deliver_backlog_quietly()
        outcomes = tuple(_outcome(alert, plan, results) for alert, plan in zip(analysis.alerts, written.alerts,
                                                                                strict=True))
        return written, outcomes

    # ------------------------------------------------------------------ before the labels arrive
    def _baseline_cache_report(self, model: str, segment: str | None, state: State):
        """(baseline state aligned with ``state``, its report, version) or None; never bootstraps."""
        b = self.store.get_baseline(model, segment=segment)
        if b is None and segment is not None:  # a segment without its own baseline: the model's
            b = self.store.get_baseline(model, segment=None)
        if b is None:
            return None
        key = (model, b.segment, b.id)
        base_state, base_report, version = self._decoded_baseline(key, b)
        if base_state.task != state.task:
            return None
        if getattr(base_state, "classes", None) != getattr(state, "classes", None):
            try:
                base_state = align_classes(base_state, state.classes)
            except StateError:
                return None
            base_report = evaluate(base_state, level=self.config.confidence_level)
        return base_report, version, base_state, key

    def _completes(self, record: BatchRecord, state: State, given_id: bool) -> bool:
        """Whether this labelled batch completes a pending one (``given_id=False``: the batch
        id was just generated, so no pending row can have it).

        Raises
        ------
        ValidationError
            When the pending batch was tracked with other predictions: labels complete the
            predictions they belong to (the same rows; nothing is written).
        """
        if not state.labelled or not given_id or record.batch_id is None:
            return False
        pending = self.store.find_pending(record.model, record.batch_id, record.segment)
        if pending is None:
            return False
        if pending.sample_count == state.n and not _same_predictions(pending.state, state):
            where = f"batch {record.batch_id!r} of model {record.model!r}" + (
                f" (segment {record.segment!r})" if record.segment is not None else "")
            raise ValidationError(
                f"{where} is pending with other predictions than these: its labels must come with the "
                "predictions (y_pred / y_pred_proba) it was tracked with; track other predictions under "
                "another batch_id", parameter="batch_id")
        return True  # (another row count is refused by the write, with its own message)

    def _estimate(self, record: BatchRecord, state: State, report: MetricReport, completing: bool = False):
        """Label-free estimate (CBPE) of a pending batch, or, when labels complete a pending
        batch (``completing``), the estimate it had and the concept-drift check of realized
        against it."""
        if state.task == "regression" or not getattr(state, "has_scores", False):
            return None, None
        if state.labelled and not completing:
            return None, None
        base = self._baseline_cache_report(record.model, record.segment, state)
        if base is None or not base[2].labelled or not base[2].has_scores:
            return None, None
        _, _, base_state, key = base
        cal_key = ("calibration", *key, tuple(base_state.classes))
        cal = self._baseline_cache.get(cal_key)
        if cal is None:
            cal = calibrate(base_state)
            self._baseline_cache[cal_key] = cal
        level = self.config.confidence_level
        if not state.labelled:
            return estimate(state, cal, level=level), None
        estimated = estimate(state.prediction_part(), cal, level=level)
        return estimated, concept_drift_check(estimated, report)

    def _drift_alert(self, record: BatchRecord, drift: Any) -> Alert:
        flagged = [f for f in drift.findings if f.suspected] or list(drift.findings)
        worst = max(flagged, key=lambda f: abs(f.z) if math.isfinite(f.z) else -1.0) if flagged else None
        return Alert(
            model=record.model, segment=record.segment, metric=None if worst is None else worst.metric,
            alert_type="concept_drift_suspected", severity="moderate",
            baseline=math.nan if worst is None else worst.estimated,
            current=math.nan if worst is None else worst.realized,
            message=("realized performance is outside the label-free estimate's interval: the relation "
                     "between scores and outcomes changed since the baseline (concept drift suspected)"),
            timestamp=record.timestamp, batch_id=record.batch_id, model_version=record.model_version,
            metadata={"concept_drift": drift.to_dict()},
        )

    def _backlog_waits(self) -> bool:
        """Whether a delivery of an older alert waits (True when that cannot be read): the
        check :meth:`AlertManager.deliver` makes first, read beside the state computation
        (a batch without alerts of its own adds none to the backlog)."""
        manager = self.alert_manager
        names = [*manager.channels, *([HOOK_CHANNEL] if manager.retraining_hook is not None else [])]
        try:
            return bool(self.store.has_open_deliveries(names))
        except Exception:  # noqa: BLE001 - the delivery call after the write reports it
            return True

    def _deliver_backlog_quietly(self) -> None:
        try:
            self.alert_manager.deliver(None, deadline=self.config.delivery_deadline_seconds)
        except Exception as exc:  # noqa: BLE001 - a delivery problem must not fail a stored batch
            logger.warning("delivering pending alerts failed: %s", exc)

    def _window_entries(self, model: str, segment: str | None, record: BatchRecord,
                        previous: Any = _UNREAD) -> list[dict] | None:
        """Stored metrics of the last ``window_batches - 1`` labelled batches, plus this one
        (``previous``: those metrics when already read, see :meth:`_prefetch`)."""
        k = self.config.detection.window_batches
        if k < 2:
            return None
        if previous is _UNREAD or previous is None:
            previous = self.store.previous_metrics(model, segment=segment, before=record, limit=k - 1)
        if len(previous) < k - 1:
            return None
        return [*previous, record.metrics]

    def _prefetch(self, model: str, segment: str | None, ts: datetime) -> Any:
        """A future of ``(stored baseline row or None, previous metrics or None, whether an
        alert delivery waits)``: the reads
        :meth:`_check` makes for a labelled batch, started on a reader thread beside the
        state computation. They depend only on the model, segment and timestamp (a new batch
        has no id yet, so "before it" is "before its timestamp")."""
        k = self.config.detection.window_batches
        before = _Before(ts, None)

        def reads() -> tuple:
            b = self._baseline_row(model, segment)
            prev = self.store.previous_metrics(model, segment=segment, before=before, limit=k - 1) if k >= 2 else None
            return b, prev, self._backlog_waits()

        return _reader().submit(reads)

    def _baseline_for(self, model: str, segment: str | None, state: State, b: Any = _UNREAD):
        """``((baseline report, version) or None, baseline row to write or None)``.

        Without a stored baseline, the first ``baseline_batches`` labelled batches become it:
        merged and evaluated here, in memory, and written in the batch's own transaction.
        ``b``: the stored baseline row (or None) when already read.
        """
        if b is _UNREAD:
            b = self._baseline_row(model, segment)
        if b is None:
            n = self.config.baseline_batches
            previous = [d for _, d in self.store.states(model, segment=segment)]
            if len(previous) + 1 < n:
                return None, None
            first = previous[:n] if len(previous) >= n else [*previous, state.to_dict()]
            merged = merge_dicts_to_state(first)
            report = evaluate(merged, level=self.config.confidence_level)
            row = {"state": merged.to_dict(), "metrics": {k: v.to_dict() for k, v in report.items()},
                   "source": f"first_{n}_batches", "sample_count": merged.n, "model_version": None}
            if len(previous) < n:  # this batch is part of its own baseline: nothing to compare
                return None, row
            return self._comparable(model, merged, report, state, 1), row
        base_state, base_report, version = self._decoded_baseline((model, segment, b.id), b)
        return self._comparable(model, base_state, base_report, state, version), None

    def _baseline_row(self, model: str, segment: str | None) -> Any:
        """The stored baseline of ``(model, segment)`` as :meth:`Store.get_baseline` returns it
        (or None), read whole only when :meth:`_decoded_baseline` does not hold it yet (else
        its id and version: all that is used of a decoded one)."""
        key = self.store.baseline_key(model, segment=segment)
        if key is None:
            return None
        if (model, segment, key[0]) in self._baseline_cache:
            return _BaselineKey(*key)
        return self.store.get_baseline(model, segment=segment)

    def _decoded_baseline(self, key: tuple, b: Any) -> tuple[State, MetricReport, int]:
        """A stored baseline decoded and evaluated once per tracker (cached by its row id)."""
        cached = self._baseline_cache.get(key)
        if cached is None:
            base_state = state_from_dict(b.state)
            cached = (base_state, evaluate(base_state, level=self.config.confidence_level), b.version)
            self._baseline_cache[key] = cached
        return cached

    def _comparable(self, model: str, base_state: State, base_report: MetricReport, state: State, version: int):
        if base_state.task != state.task:
            logger.warning("baseline of %s is for task %s, the batch is %s; degradation not checked",
                           model, base_state.task, state.task)
            return None
        if getattr(base_state, "classes", None) != getattr(state, "classes", None):
            try:  # the model's label set grew since the baseline
                base_state = align_classes(base_state, state.classes)
            except StateError:
                logger.warning("baseline of %s has classes %s, the batch %s; degradation not checked",
                               model, list(base_state.classes), list(state.classes))
                return None
            base_report = evaluate(base_state, level=self.config.confidence_level)
        return base_report, version

    def _store_baseline(self, model, segment, state: State, *, source: str, model_version=None) -> int:
        self.store.set_model_identity(model, lambda current: self._resolve_identity(model, current, state))
        report = evaluate(state, level=self.config.confidence_level)
        return self.store.set_baseline(
            model, state.to_dict(), {k: v.to_dict() for k, v in report.items()}, segment=segment,
            model_version=model_version, source=source, sample_count=state.n,
        )

    def set_baseline(
        self,
        y_true: Any = None,
        y_pred: Any = None,
        y_pred_proba: Any = None,
        *,
        model: str | None = None,
        segment: str | None = None,
        model_version: str | None = None,
        source: str = "reference_data",
        from_history: bool = False,
        n_batches: int | None = None,
        days: float | None = None,
        task: str | None = None,
        classes: Any = None,
        positive_label: Any = None,
    ) -> int:
        """Set the baseline from a reference batch, or from the first batches / days of history.

        Returns the baseline version (1, 2, ... per model and segment).

        Examples
        --------
        >>> import tempfile, os
        >>> t = ModelPerformanceTracker(store=os.path.join(tempfile.mkdtemp(), "p.db"))
        >>> t.set_baseline([0, 1, 1, 0], [0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2], model_version="v1")
        1
        """
        model = self._model(model)
        segment = _check_name(segment, "segment")
        if from_history or (y_true is None and (n_batches or days)):
            recs = self.store.records(model, segment=segment, include_pending=False)
            if days is not None:
                if not recs:
                    raise ValidationError(f"no history for model {model!r} to build a baseline from", parameter="days")
                end = recs[0].timestamp + timedelta(days=check_days(days))
                recs = [r for r in recs if r.timestamp < end]
            if n_batches is not None:
                if isinstance(n_batches, bool) or not isinstance(n_batches, numbers.Integral) or n_batches < 1:
                    raise ValidationError(f"n_batches must be a whole number >= 1, got {n_batches!r}",
                                          parameter="n_batches")
                recs = recs[:n_batches]
            if not recs:
                raise ValidationError(f"no labelled history for model {model!r}", parameter="n_batches")
            state = merge_dicts_to_state([r.state for r in recs])
            return self._store_baseline(model, segment, state, source=f"history_{len(recs)}_batches",
                                        model_version=model_version or recs[0].model_version)
        if y_true is None:
            raise ValidationError("set_baseline needs y_true (or from_history=True)", parameter="y_true")
        task, classes = self._declared(model, task, classes)
        state, _ = self._model_state(model, y_true, y_pred, y_pred_proba, task=task, classes=classes,
                                     positive_label=positive_label)
        return self._store_baseline(model, segment, state, source=source, model_version=model_version)

    def get_baseline(self, *, model: str | None = None, segment: str | None = None) -> MetricReport | None:
        """Metric values of the active baseline (None when there is none yet)."""
        b = self.store.get_baseline(self._model(model), segment=segment)
        if b is None:
            return None
        return evaluate(state_from_dict(b.state), level=self.config.confidence_level)

    def track_states(self, frame: pd.DataFrame, *, model: str | None = None, timestamp_col: str = "timestamp",
                     batch_col: str = "batch_id", segment_col: str | None = "segment") -> list[TrackingResult]:
        """Track states computed elsewhere (e.g. :func:`perfkit.engines.compute_states`)."""
        if "state" not in frame.columns:
            raise ValidationError("frame needs a 'state' column", parameter="frame")
        out = []
        for _, row in frame.iterrows():
            out.append(self._track_state(row["state"], model=model,
                                         timestamp=row[timestamp_col] if timestamp_col in frame else None,
                                         batch_id=str(row[batch_col]) if batch_col in frame else None,
                                         segment=row[segment_col] if segment_col and segment_col in frame else None))
        return out

    def _track_state(self, state: State, *, model=None, timestamp=None, batch_id=None, segment=None) -> TrackingResult:
        if isinstance(state, dict):
            state = state_from_dict(state)
        ts = _as_utc(timestamp)
        model = self._model(model)
        report = evaluate(state, level=self.config.confidence_level)
        score = performance_score(report, state.task)
        record = BatchRecord(
            model=model, timestamp=ts, task=state.task, state=state.to_dict(),
            metrics={k: v.to_dict() for k, v in report.items()}, sample_count=state.n, segment=segment,
            performance_score=score if math.isfinite(score) else None, labels_pending=not state.labelled,
            **({"batch_id": batch_id} if batch_id else {}),
        )
        ident = self._identity(model)
        if ident is not None:
            _merge_identity(model, ident, state)
        return self._check(record, state, report, score, {})

    def track_stream(self, batches: Iterable[Any], **kwargs: Any) -> Iterator[TrackingResult]:
        """Track an iterable of batches, yielding each result as it is stored.

        Each item is a mapping with ``y_true``, ``y_pred`` and optionally ``y_pred_proba``,
        ``metadata``, ``timestamp``, ``segment`` ..., or a tuple ``(y_true, y_pred[, proba[, metadata]])``.
        """
        for item in batches:
            if isinstance(item, Mapping):
                yield self.track_performance(**{**kwargs, **item})
            elif isinstance(item, tuple):
                yield self.track_performance(*item, **kwargs)
            else:
                raise InputTypeError(f"stream items must be mappings or tuples, got {type(item).__name__}",
                                     parameter="batches")

    def deliver_pending(self, deadline: float | None = None) -> list[DeliveryResult]:
        """Deliver pending / failed alert deliveries (claimed with a lease, so concurrent
        processes never send the same one); waits at most ``deadline`` seconds in total
        (None: until each has been attempted once). Returns the results of this call."""
        return self.alert_manager.deliver(None, deadline=deadline)

    def retry_pending_alerts(self) -> int:
        """Retry failed / pending alert deliveries; returns how many were delivered now."""
        return sum(1 for r in self.deliver_pending() if r.status == "delivered")

    # ------------------------------------------------------------------ reading
    def _model(self, model: str | None) -> str:
        """The model a call is about: ``model`` (checked like every name) or the tracker's own."""
        return _check_name(model, "model") or self.model

    def _window(self, days: float | None, end: datetime | None = None) -> tuple[datetime | None, datetime]:
        end = _as_utc(end) if end is not None else datetime.now(UTC)
        if days is None:
            return None, end
        return end - timedelta(days=check_days(days)), end

    def get_history(self, days: float | None = None, *, model: str | None = None, segment: Any = _ALL,
                    end: datetime | None = None) -> pd.DataFrame:
        """History of a model as a DataFrame (one row per batch, metric columns)."""
        start, end = self._window(days, end)
        kw = {} if segment is _ALL else {"segment": segment}
        return self.store.history(self._model(model), start=start, end=end + timedelta(microseconds=1), **kw)

    def window_metrics(self, days: float = 7, *, model: str | None = None, segment: Any = _ALL,
                       end: datetime | None = None) -> MetricReport | None:
        """Metrics of a window computed from the merged states of its batches (exact)."""
        start, end = self._window(days, end)
        kw = {} if segment is _ALL else {"segment": segment}
        model = self._model(model)
        states = self.store.states(model, start=start, end=end + timedelta(microseconds=1), **kw)
        usable = [d for _, d in states if not _overflowed(d)]
        skipped = len(states) - len(usable)
        if skipped:
            logger.warning("window of %s: %d batch(es) whose statistics overflowed (values near 1e308) skipped",
                           model, skipped)
        if not usable:
            return None
        report = evaluate(merge_dicts_to_state(usable), level=self.config.confidence_level)
        if not skipped:
            return report
        flag = f"overflow_batches_skipped:{skipped}"
        return MetricReport(task=report.task, level=report.level, n=report.n, values={
            k: MetricValue(**{**v.__dict__, "reason": flag if v.reason is None else f"{v.reason};{flag}"})
            for k, v in report.items()})

    def get_performance_summary(self, days: float = 30, *, model: str | None = None, segment: Any = _ALL,
                                end: datetime | None = None) -> Any:
        """Summary of the last ``days`` (seed keys plus trends, alerts, baseline, segments)."""
        from perfkit.summary import build_summary

        return build_summary(self.store, self.config, days=days, model=self._model(model), segment=segment, end=end)

    def generate_performance_report(self, output_path: str | os.PathLike[str] | None = None, days: float = 30,
                                    *, model: str | None = None, end: datetime | None = None) -> dict[str, Any]:
        """JSON report (documented schema, ``schema_version``) written to ``output_path``."""
        from perfkit.summary import build_report

        report = build_report(self.store, self.config, days=days, model=self._model(model), end=end)
        if output_path is not None:
            from perfkit._files import write_output

            p = write_output(output_path, json.dumps(report, indent=2, allow_nan=False), "output_path")
            logger.info("performance report written to %s", p)
        return report

    def plot_performance_trends(self, output_path: str | os.PathLike[str] | None = None, days: float = 30, *,
                                metric: str | None = None, model: str | None = None, end: datetime | None = None):
        """Chart of the tracked metrics over time; written as PNG, SVG or HTML by extension."""
        from perfkit.summary import trends_chart

        chart = trends_chart(self.store, self.config, days=days, metric=metric, model=self._model(model), end=end)
        if output_path is not None:
            from perfkit.report.charts import save_chart

            save_chart(chart, output_path)
        return chart

    def export_history(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Back up the whole store to JSON lines (default: ``history_file`` of the config)."""
        from perfkit._files import check_output_path

        p = check_output_path(self.config.storage.history_file if path is None else path)
        self.store.export_json(p)  # its directory created; a place that cannot be written: ValidationError
        return p

    def apply_retention(self, days: float, *, all_models: bool = False,
                        keep_undelivered: bool = True) -> dict[str, int]:
        """Delete this tracker's model's records and alerts older than ``days``.

        ``all_models=True`` applies it to every model of the store. Alerts whose delivery is
        pending or failed are kept unless ``keep_undelivered=False``. Returns what was
        deleted: ``{"batches": n, "alerts": m, "undelivered_alerts_kept": k}``.
        """
        return self.store.apply_retention(days, model=None if all_models else self.model,
                                          keep_undelivered=keep_undelivered)

    def alerts(self, days: float | None = None, *, model: str | None = None, include_suppressed: bool = True) -> pd.DataFrame:
        start, end = self._window(days)
        return self.store.alerts(self._model(model), start=start, include_suppressed=include_suppressed)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ModelPerformanceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProductionMonitor:
    """The seed's production monitor: the same tracking, plus drift of the predictions.

    ``ProductionMonitor()`` uses the same defaults as :class:`ModelPerformanceTracker`;
    ``track_model_performance`` gives the same result as ``track_performance``.
    """

    def __init__(self, config_path: str | os.PathLike[str] | None = None, *,
                 tracker: ModelPerformanceTracker | None = None, **kwargs: Any) -> None:
        self.tracker = tracker if tracker is not None else ModelPerformanceTracker(config_path, **kwargs)

    def track_model_performance(self, y_true: Any, y_pred: Any = None, y_pred_proba: Any = None,
                                metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> TrackingResult:
        return self.tracker.track_performance(y_true, y_pred, y_pred_proba, metadata, **kwargs)

    def get_performance_summary(self, days: float = 30, **kwargs: Any) -> Any:
        return self.tracker.get_performance_summary(days, **kwargs)

    def drift_report(self, days: float = 30, **kwargs: Any) -> Any:
        """Prediction drift of each batch vs the baseline and its correlation with degradation."""
        from perfkit.summary import drift_analysis

        kwargs.setdefault("model", self.tracker.model)
        return drift_analysis(self.tracker.store, self.tracker.config, days=days, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "tracker":
            raise AttributeError(name)
        return getattr(self.tracker, name)
