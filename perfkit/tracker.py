"""The seed's facade: :class:`ModelPerformanceTracker` and :class:`ProductionMonitor`.

A thin layer over the pure parts: validation and states (:mod:`perfkit.metrics`), the
history store (:mod:`perfkit.store`), degradation detection (:mod:`perfkit.analysis`) and
the alert policy (:mod:`perfkit.alerts`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from perfkit._checks import check_days, check_name, check_timestamp
from perfkit._checks import check_metadata as _check_metadata
from perfkit.alerts import Alert, Channel, channel_from_config
from perfkit.alerts.policy import AlertManager, AlertOutcome
from perfkit.analysis.degradation import DegradationAnalysis, assess
from perfkit.config import PerformanceConfig, load_config
from perfkit.exceptions import InputTypeError, ValidationError
from perfkit.metrics import (
    CUSTOM_METRICS,
    MetricReport,
    MetricValue,
    compute_state,
    evaluate,
    performance_score,
    state_from_dict,
)
from perfkit.metrics.state import State, merge_dicts_to_state
from perfkit.store import BatchRecord, Store, open_store

__all__ = ["ModelPerformanceTracker", "ProductionMonitor", "TrackingResult"]

logger = logging.getLogger("perfkit")

from perfkit.store import ALL_SEGMENTS as _ALL  # noqa: E402


def _as_utc(ts: Any, parameter: str = "timestamp") -> datetime:
    return check_timestamp(ts, parameter, none_is_now=True)


def _check_name(value: Any, parameter: str) -> str | None:
    return check_name(value, parameter, optional=True)


def _report_from_record_metrics(metrics: Mapping[str, Mapping[str, Any]], task: str, n: int) -> MetricReport:
    values = {}
    for name, d in metrics.items():
        values[name] = MetricValue.from_dict({"name": name, **d})
    return MetricReport(task=task, level=0.95, n=n, values=values)


@dataclass(frozen=True)
class TrackingResult(Mapping[str, Any]):
    """What :meth:`ModelPerformanceTracker.track_performance` returns (immutable).

    Supports the seed's dict-style access: ``result['performance_score']``,
    ``result['metrics']`` (``{name: MetricValue}`` with ``value``, ``ci_lower``,
    ``ci_upper``), ``result['sample_count']``, ``result['degradation_analysis']``.
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

    _KEYS = (
        "batch_id", "model", "segment", "model_version", "timestamp", "task", "sample_count",
        "performance_score", "metrics", "labels_pending", "degradation_analysis", "alerts",
        "metadata", "record_id",
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

        Returns
        -------
        TrackingResult

        Raises
        ------
        ValidationError, InputTypeError
            Bad input, before anything is written.
        StoreError
            The store failed (the batch was not written).
        """
        meta = _check_metadata(metadata)
        ts = _as_utc(timestamp)
        model = _check_name(model, "model") or self.model
        segment = _check_name(segment, "segment")
        if model_version is None and meta.get("model_version") is not None:
            model_version = str(meta["model_version"])
        model_version = _check_name(model_version, "model_version")
        bid = batch_id if batch_id is not None else meta.get("batch_id")
        bid = _check_name(str(bid) if bid is not None else None, "batch_id")

        state = compute_state(y_true, y_pred, y_pred_proba, task=task, classes=classes, positive_label=positive_label)
        report = evaluate(state, level=self.config.confidence_level)
        custom = self._custom_metrics(y_true, y_pred, y_pred_proba, state.task)
        if custom:
            report = MetricReport(task=report.task, level=report.level, n=report.n, values={**report.values, **custom})
        score = performance_score(report, state.task)
        record = BatchRecord(
            model=model,
            timestamp=ts,
            task=state.task,
            state=state.to_dict(),
            metrics={k: v.to_dict() for k, v in report.items()},
            sample_count=state.n,
            segment=segment,
            model_version=model_version,
            performance_score=score if math.isfinite(score) else None,
            labels_pending=not state.labelled,
            metadata=meta,
            **({"batch_id": bid} if bid is not None else {}),
        )
        self._retry_quietly()
        pending = self.store.find_pending(model, record.batch_id, segment) if bid is not None else None
        stored = self.store.complete(record) if pending is not None and state.labelled else self.store.append(record)

        return self._check(stored, state, report, score, meta)

    def _check(self, stored: BatchRecord, state: State, report: MetricReport, score: float,
               meta: Mapping[str, Any]) -> TrackingResult:
        """Compare a stored batch with its baseline, deliver the alerts, build the result."""
        analysis = DegradationAnalysis(False, (), performance_score=score, settings=self.config.detection)
        outcomes: tuple[AlertOutcome, ...] = ()
        if state.labelled:
            baseline = self._baseline_for(stored.model, stored.segment, state, just_added=stored)
            if baseline is not None:
                base_report, version = baseline
                analysis = assess(
                    report, base_report, self.config.detection, model=stored.model, timestamp=stored.timestamp,
                    segment=stored.segment, batch_id=stored.batch_id, model_version=stored.model_version,
                    performance_score=score, metadata=meta,
                    metrics=[m for m in self.config.metrics_to_track if m in report], baseline_version=version,
                    window_entries=self._window_entries(stored.model, stored.segment, stored),
                )
                outcomes = tuple(self.alert_manager.process(analysis.alerts))
        return TrackingResult(
            batch_id=stored.batch_id, model=stored.model, segment=stored.segment,
            model_version=stored.model_version, timestamp=stored.timestamp, task=state.task,
            sample_count=state.n, performance_score=score, metrics=report, labels_pending=not state.labelled,
            degradation_analysis=analysis, alert_outcomes=outcomes, metadata=meta, record_id=stored.id,
            state=state,
        )

    def _window_entries(self, model: str, segment: str | None, stored: BatchRecord) -> list[dict] | None:
        """Stored metrics of the last ``window_batches`` labelled batches, this one included."""
        k = self.config.detection.window_batches
        if k < 2:
            return None
        previous = self.store.previous_metrics(model, segment=segment, before=stored, limit=k - 1)
        if len(previous) < k - 1:
            return None
        return [*previous, stored.metrics]

    def _retry_quietly(self) -> None:
        try:
            self.alert_manager.retry_pending()
        except Exception as exc:  # noqa: BLE001 - a retry problem must not block tracking
            logger.warning("retrying pending alert deliveries failed: %s", exc)

    def _baseline_for(self, model: str, segment: str | None, state: State, *, just_added: BatchRecord):
        b = self.store.get_baseline(model, segment=segment)
        if b is None:
            recs = self.store.records(model, segment=segment, include_pending=False)
            n = self.config.baseline_batches
            if len(recs) < n:
                return None
            first = recs[:n]
            in_baseline = any(r.batch_id == just_added.batch_id for r in first)
            if in_baseline and len(recs) > n:
                return None
            self._store_baseline(model, segment, merge_dicts_to_state([r.state for r in first]),
                                 source=f"first_{n}_batches", model_version=first[0].model_version)
            if in_baseline:  # this batch is part of its own baseline: nothing to compare
                return None
            b = self.store.get_baseline(model, segment=segment)
        key = (model, segment, b.id)
        cached = self._baseline_cache.get(key)
        if cached is not None:
            return cached
        base_state = state_from_dict(b.state)
        if base_state.task != state.task or getattr(base_state, "classes", None) != getattr(state, "classes", None):
            logger.warning("baseline of %s is for another task/class set; degradation not checked", model)
            return None
        out = (evaluate(base_state, level=self.config.confidence_level), b.version)
        self._baseline_cache[key] = out
        return out

    def _store_baseline(self, model, segment, state: State, *, source: str, model_version=None) -> int:
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
        model = _check_name(model, "model") or self.model
        segment = _check_name(segment, "segment")
        if from_history or (y_true is None and (n_batches or days)):
            recs = self.store.records(model, segment=segment, include_pending=False)
            if days is not None:
                if not recs:
                    raise ValidationError(f"no history for model {model!r} to build a baseline from", parameter="days")
                end = recs[0].timestamp + timedelta(days=check_days(days))
                recs = [r for r in recs if r.timestamp < end]
            if n_batches is not None:
                if n_batches < 1:
                    raise ValidationError("n_batches must be >= 1", parameter="n_batches")
                recs = recs[:n_batches]
            if not recs:
                raise ValidationError(f"no labelled history for model {model!r}", parameter="n_batches")
            state = merge_dicts_to_state([r.state for r in recs])
            return self._store_baseline(model, segment, state, source=f"history_{len(recs)}_batches",
                                        model_version=model_version or recs[0].model_version)
        if y_true is None:
            raise ValidationError("set_baseline needs y_true (or from_history=True)", parameter="y_true")
        state = compute_state(y_true, y_pred, y_pred_proba, task=task, classes=classes, positive_label=positive_label)
        return self._store_baseline(model, segment, state, source=source, model_version=model_version)

    def get_baseline(self, *, model: str | None = None, segment: str | None = None) -> MetricReport | None:
        """Metric values of the active baseline (None when there is none yet)."""
        b = self.store.get_baseline(model or self.model, segment=segment)
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
        model = _check_name(model, "model") or self.model
        report = evaluate(state, level=self.config.confidence_level)
        score = performance_score(report, state.task)
        record = BatchRecord(
            model=model, timestamp=ts, task=state.task, state=state.to_dict(),
            metrics={k: v.to_dict() for k, v in report.items()}, sample_count=state.n, segment=segment,
            performance_score=score if math.isfinite(score) else None, labels_pending=not state.labelled,
            **({"batch_id": batch_id} if batch_id else {}),
        )
        return self._check(self.store.append(record), state, report, score, {})

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

    def retry_pending_alerts(self) -> int:
        """Retry failed / pending alert deliveries; returns how many were delivered now."""
        return sum(1 for r in self.alert_manager.retry_pending() if r.status == "delivered")

    # ------------------------------------------------------------------ reading
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
        return self.store.history(model or self.model, start=start, end=end + timedelta(microseconds=1), **kw)

    def window_metrics(self, days: float = 7, *, model: str | None = None, segment: Any = _ALL,
                       end: datetime | None = None) -> MetricReport | None:
        """Metrics of a window computed from the merged states of its batches (exact)."""
        start, end = self._window(days, end)
        kw = {} if segment is _ALL else {"segment": segment}
        states = self.store.states(model or self.model, start=start, end=end + timedelta(microseconds=1), **kw)
        if not states:
            return None
        return evaluate(merge_dicts_to_state([d for _, d in states]), level=self.config.confidence_level)

    def get_performance_summary(self, days: float = 30, *, model: str | None = None, segment: Any = _ALL,
                                end: datetime | None = None) -> Any:
        """Summary of the last ``days`` (seed keys plus trends, alerts, baseline, segments)."""
        from perfkit.summary import build_summary

        return build_summary(self.store, self.config, days=days, model=model or self.model, segment=segment, end=end)

    def generate_performance_report(self, output_path: str | os.PathLike[str] | None = None, days: float = 30,
                                    *, model: str | None = None, end: datetime | None = None) -> dict[str, Any]:
        """JSON report (documented schema, ``schema_version``) written to ``output_path``."""
        from perfkit.summary import build_report

        report = build_report(self.store, self.config, days=days, model=model or self.model, end=end)
        if output_path is not None:
            p = Path(output_path)
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(p.suffix + ".tmp")
            tmp.write_text(json.dumps(report, indent=2, allow_nan=False), encoding="utf-8")
            os.replace(tmp, p)
            logger.info("performance report written to %s", p)
        return report

    def plot_performance_trends(self, output_path: str | os.PathLike[str] | None = None, days: float = 30, *,
                                metric: str | None = None, model: str | None = None, end: datetime | None = None):
        """Chart of the tracked metrics over time; written as PNG, SVG or HTML by extension."""
        from perfkit.summary import trends_chart

        chart = trends_chart(self.store, self.config, days=days, metric=metric, model=model or self.model, end=end)
        if output_path is not None:
            from perfkit.report.charts import save_chart

            save_chart(chart, output_path)
        return chart

    def export_history(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Back up the whole store to JSON lines (default: ``history_file`` of the config)."""
        p = Path(path or self.config.storage.history_file)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.store.export_json(p)
        return p

    def apply_retention(self, days: float) -> int:
        """Delete records (and alerts) older than ``days``; returns the batch rows deleted."""
        return self.store.delete_older_than(days)

    def alerts(self, days: float | None = None, *, model: str | None = None, include_suppressed: bool = True) -> pd.DataFrame:
        start, end = self._window(days)
        return self.store.alerts(model or self.model, start=start, include_suppressed=include_suppressed)

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
