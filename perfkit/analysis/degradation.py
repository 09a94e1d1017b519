"""Degradation detection: is this batch (or window) credibly worse than the baseline?

A degradation counts when it is *practically* large (the configured threshold, relative to
the baseline by default) **and** *statistically* credible given the sample sizes of the
batch and the baseline, with false-discovery control across the metrics (and segments)
checked at once. Both decisions, the p-values and the smallest degradation the batch could
have detected are reported for every metric.

Tests (one-sided, H1: the current value is worse):

=====================================  ===================================================
accuracy, positive-class precision /   score test for two independent proportions
recall                                 (``statsmodels`` ``test_proportions_2indep``)
roc_auc                                independent-samples DeLong z
macro precision / recall / F1          z with multinomial-bootstrap standard errors
log loss, MSE, RMSE, MAE, MAPE, R² ...  Welch z from the stored moments (delta method)
=====================================  ===================================================

With ``gating="minimum_effect"`` (the default) the null hypothesis is "degradation <=
threshold": an alert needs evidence that the drop is larger than the threshold, which keeps
false alarms of healthy batches well under 1 % even for small batches
(``benchmarks/detection.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from perfkit.alerts import apply_cooldown
from perfkit.alerts.types import Alert
from perfkit.analysis._decide import _decide_arrays, adjust_pvalues, decide, severity_for
from perfkit.config import DetectionSettings
from perfkit.exceptions import InputTypeError, ValidationError
from perfkit.metrics import METRICS, MetricReport, MetricValue, performance_score_se
from perfkit.metrics import performance_score as performance_score_of

__all__ = [
    "DegradationAnalysis",
    "MetricFinding",
    "assess",
    "build_alerts",
    "compare_metric",
    "adjust_pvalues",
    "decision_rows",
    "detect_degradation",
    "estimated_frame",
    "history_frame",
    "metric_status",
    "replay",
    "replay_decisions",
    "severity_for",
    "window_report",
]


def _f(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class MetricFinding:
    """The comparison of one metric with its baseline.

    ``degradation`` is positive when the metric got worse (relative to the baseline in
    ``relative`` mode, in the metric's units in ``absolute`` mode), whatever its direction.
    """

    metric: str
    higher_is_better: bool
    baseline: float
    current: float
    ci_lower: float
    ci_upper: float
    relative_change: float
    degradation: float
    threshold: float
    practical: bool
    test: str
    statistic: float
    p_value: float
    adjusted_p_value: float = math.nan
    significant: bool = False
    degraded: bool = False
    severity: str | None = None
    min_detectable_degradation: float = math.nan
    reason: str | None = None
    segment: str | None = None
    scope: str = "batch"
    retraining: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for k, v in self.__dict__.items():
            out[k] = _f(v) if isinstance(v, float) else v
        return out


@dataclass(frozen=True)
class DegradationAnalysis(Mapping[str, Any]):
    """Result of comparing a batch (or window) with the baseline.

    Dict-style access gives the seed's keys: ``degradation_detected``, ``findings``
    (``{metric: finding dict}``), ``alerts`` (list of alert dicts), ``max_degradation``,
    ``retraining_recommended``.
    """

    degradation_detected: bool
    findings: tuple[MetricFinding, ...]
    alerts: tuple[Alert, ...] = ()
    retraining_recommended: bool = False
    performance_score: float = math.nan
    low_performance: bool = False
    settings: DetectionSettings = field(default_factory=DetectionSettings)
    baseline_version: int | None = None
    window_findings: tuple[MetricFinding, ...] = ()

    @property
    def max_degradation(self) -> float:
        vals = [f.degradation for f in self.findings if f.degraded]
        return max(vals) if vals else 0.0

    @property
    def degraded_metrics(self) -> list[str]:
        return [f.metric for f in (*self.findings, *self.window_findings) if f.degraded]

    def finding(self, metric: str) -> MetricFinding:
        for f in self.findings:
            if f.metric == metric:
                return f
        raise KeyError(metric)

    def _as_dict(self) -> dict[str, Any]:
        return {
            "degradation_detected": self.degradation_detected,
            "degraded_metrics": self.degraded_metrics,
            "max_degradation": self.max_degradation,
            "retraining_recommended": self.retraining_recommended,
            "low_performance": self.low_performance,
            "performance_score": _f(self.performance_score),
            "findings": {
                f.metric if f.segment is None else f"{f.segment}/{f.metric}": f.to_dict()
                for f in self.findings
            },
            "alerts": [a.to_dict() for a in self.alerts],
            "gating": self.settings.gating,
            "alpha": self.settings.alpha,
            "fdr_method": self.settings.fdr_method,
            "baseline_version": self.baseline_version,
            "window_findings": {
                f.metric if f.segment is None else f"{f.segment}/{f.metric}": f.to_dict()
                for f in self.window_findings
            },
        }

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())

    def to_dict(self) -> dict[str, Any]:
        return self._as_dict()

    def to_frame(self):
        """Tidy frame: one row per metric finding."""
        import pandas as pd

        return pd.DataFrame([f.to_dict() for f in self.findings])


def _window_kind(metric: str) -> str | None:
    spec = METRICS.get(metric)
    return None if spec is None else spec.window


def _window_sums(kind: str, n, value, se, successes, trials) -> tuple:
    """Per-batch additive pieces of a window value (arrays or scalars)."""
    if kind == "proportion":
        return (successes, trials)
    n = np.asarray(n, dtype=float)
    var = np.asarray(se, dtype=float) ** 2 * n  # se = sqrt(var / n), var with ddof = 1
    return (n, n * value, (n - 1) * var + n * np.asarray(value, dtype=float) ** 2)


def _window_from_sums(kind: str, sums: tuple) -> tuple:
    """(value, se, successes, trials, n) of a window from summed :func:`_window_sums`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "proportion":
            S, T = (np.asarray(x, dtype=float) for x in sums)
            v = S / T
            return v, np.sqrt(v * (1 - v) / T), S, T, T
        A, Bs, C = (np.asarray(x, dtype=float) for x in sums)
        mean = Bs / A
        var = (C - A * mean * mean) / (A - 1)
        return mean, np.sqrt(np.maximum(var, 0.0) / A), None, None, A


def window_report(entries: Sequence[Mapping[str, Mapping[str, Any]]], metrics: Sequence[str]) -> dict[str, MetricValue]:
    """Metric values of a window of batches from their stored metric dicts.

    Only metrics whose window value follows exactly from per-batch numbers (the metric
    table's ``window`` kind) are returned.

    Examples
    --------
    >>> a = {"accuracy": {"value": 0.8, "successes": 80, "trials": 100, "n": 100}}
    >>> b = {"accuracy": {"value": 0.9, "successes": 90, "trials": 100, "n": 100}}
    >>> round(window_report([a, b], ["accuracy"])["accuracy"].value, 3)
    0.85
    """
    out: dict[str, MetricValue] = {}
    for m in metrics:
        kind = _window_kind(m)
        if kind is None or not entries or not all(m in e for e in entries):
            continue
        parts = []
        for e in entries:
            d = e[m]
            if d.get("value") is None or (kind == "proportion" and d.get("trials") is None) or \
                    (kind == "mean" and (d.get("se") is None or not d.get("n"))):
                break
            parts.append(_window_sums(kind, d.get("n"), d["value"], d.get("se"), d.get("successes"), d.get("trials")))
        else:
            sums = tuple(float(np.sum([p[i] for p in parts])) for i in range(len(parts[0])))
            v, se, succ, trials, n = _window_from_sums(kind, sums)
            out[m] = MetricValue(m, float(v), se=float(se), n=int(n),
                                 successes=None if succ is None else float(succ),
                                 trials=None if trials is None else float(trials), method="window")
    return out


def _row(family: Any, segment: str | None, scope: str, cur: MetricValue, base: MetricValue) -> dict[str, Any]:
    return {
        "family": family, "segment": segment, "metric": cur.name, "scope": scope,
        "value": cur.value, "se": cur.se, "n": cur.n, "successes": cur.successes, "trials": cur.trials,
        "baseline": base.value, "baseline_se": base.se, "baseline_successes": base.successes,
        "baseline_trials": base.trials,
    }


def decision_rows(
    groups: Sequence[tuple[str | None, Mapping[str, MetricValue], Mapping[str, MetricValue]]],
    names: Sequence[str],
    *,
    family: Any = 0,
    scope: str = "batch",
) -> list[dict[str, Any]]:
    """Rows for :func:`perfkit.analysis.decide` from ``(segment, current, baseline)`` reports."""
    rows = []
    for segment, cur, base in groups:
        for name in names:
            if name in cur and name in base:
                rows.append(_row(family, segment, scope, cur[name], base[name]))
    return rows


def _decide_records(rows: list[dict[str, Any]], settings: DetectionSettings) -> list[dict[str, Any]]:
    """:func:`decide` on a few row dicts without a DataFrame: the row dicts plus their
    decision columns (one tracking call: the array core, no pandas)."""
    cols: dict[str, Any] = {k: [r.get(k) for r in rows] for k in ("family", "segment", "metric", "scope")}
    for k in ("value", "se", "n", "successes", "trials", "baseline", "baseline_se", "baseline_successes",
              "baseline_trials"):
        cols[k] = [r.get(k) for r in rows]
    decided = _decide_arrays(cols, settings)
    columns = list(decided.items())
    out = []
    for i, r in enumerate(rows):
        rec = {"baseline": None, **r}
        for k, v in columns:
            rec[k] = v[i].item() if isinstance(v[i], np.generic) else v[i]
        if not isinstance(rec["segment"], str):
            rec["segment"] = None
        out.append(rec)
    return out


def _finding(r: Mapping[str, Any], cur: MetricValue | None) -> MetricFinding:
    def f(x: Any) -> float:
        return math.nan if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    reason = r["reason"]
    if cur is not None and not math.isfinite(cur.value):
        reason = f"undefined:{cur.reason}"
    return MetricFinding(
        metric=r["metric"], higher_is_better=bool(r["higher_is_better"]), baseline=f(r["baseline"]),
        current=f(r["value"]), ci_lower=f(cur.ci_lower) if cur is not None else math.nan,
        ci_upper=f(cur.ci_upper) if cur is not None else math.nan,
        relative_change=f(r["relative_change"]), degradation=f(r["degradation"]), threshold=f(r["threshold"]),
        practical=bool(r["practical"]), test=r["test"], statistic=f(r["statistic"]), p_value=f(r["p_value"]),
        adjusted_p_value=f(r["adjusted_p_value"]), significant=bool(r["significant"]),
        degraded=bool(r["degraded"]), severity=r["severity"] if r["degraded"] else None,
        min_detectable_degradation=f(r["min_detectable_degradation"]), reason=reason,
        segment=r["segment"], scope=r["scope"], retraining=bool(r["retraining"]),
    )


def _check_names(names: Sequence[str], settings: DetectionSettings) -> None:
    for name in names:
        if name not in settings.thresholds:
            raise ValidationError(f"no threshold configured for metric {name!r}", parameter="metrics")


def detect_degradation(
    current: MetricReport | Mapping[str, MetricValue] | Sequence[tuple[str | None, Mapping, Mapping]],
    baseline: MetricReport | Mapping[str, MetricValue] | None = None,
    settings: DetectionSettings | None = None,
    *,
    metrics: Sequence[str] | None = None,
) -> list[MetricFinding]:
    """Per-metric findings, with false-discovery control across everything checked at once.

    Parameters
    ----------
    current, baseline : MetricReport
        Metric values of the batch (or merged window) and of the baseline. To check several
        segments together (one FDR family), pass ``current`` as a list of
        ``(segment, current_report, baseline_report)`` and leave ``baseline`` as None.
    settings : DetectionSettings
    metrics : sequence of str, optional
        Restrict to these metrics (default: those with a threshold).

    Examples
    --------
    >>> from perfkit.metrics import compute_metrics
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 5000)
    >>> good = compute_metrics(y, np.where(rng.random(5000) < 0.9, y, 1 - y))
    >>> bad = compute_metrics(y, np.where(rng.random(5000) < 0.7, y, 1 - y))
    >>> s = DetectionSettings(thresholds={"accuracy": 0.05})
    >>> f = detect_degradation(bad, good, s)[0]
    >>> f.degraded, f.severity
    (True, 'critical')
    """
    settings = settings or DetectionSettings()
    groups = list(current) if baseline is None else [(None, current, baseline)]  # type: ignore[arg-type]
    names = list(metrics) if metrics is not None else list(settings.thresholds)
    _check_names(names, settings)
    rows = decision_rows(groups, names)
    if not rows:
        return []
    decided = decide(pd.DataFrame(rows), settings)
    reports = {seg: cur for seg, cur, _ in groups}
    return [_finding(r, reports[r["segment"]].get(r["metric"])) for r in decided.to_dict("records")]


def compare_metric(
    current: MetricValue,
    baseline: MetricValue,
    threshold: float,
    settings: DetectionSettings,
) -> MetricFinding:
    """Compare one metric of the current batch with the baseline (a family of one)."""
    s = settings.replace(thresholds={current.name: threshold})
    return detect_degradation({current.name: current}, {current.name: baseline}, s)[0]


def metric_status(
    current: Mapping[str, MetricValue],
    baseline: Mapping[str, MetricValue] | None,
    settings: DetectionSettings,
    metrics: Sequence[str],
) -> pd.DataFrame:
    """A status per metric for a report (a window or a batch) against the baseline.

    The decision of :func:`decide` (one family): ``"degraded"`` or ``"ok"`` for metrics
    with a threshold; for the others ``"changed, no threshold"`` when the change in the bad
    direction is credible (threshold 0, ``significance`` gating) and ``"no threshold"``
    otherwise; ``"no baseline"`` / ``"undefined"`` when there is nothing to compare.

    Returns
    -------
    DataFrame
        :func:`decide` columns plus ``status``, one row per metric of ``metrics`` present in
        ``current``.
    """
    names = [m for m in metrics if m in current]
    base = baseline or {}
    rows = []
    for m in names:
        if m in base:
            rows.append(_row(0, None, "batch", current[m], base[m]))
        else:
            rows.append({"family": 0, "segment": None, "metric": m, "scope": "batch",
                         "value": current[m].value, "se": current[m].se, "baseline": math.nan})
    if not rows:
        return decide(pd.DataFrame(columns=["family", "metric", "value"]), settings).assign(status=[])
    frame = pd.DataFrame(rows)
    with_thr = np.array([m in settings.thresholds for m in names])
    frame["threshold"] = [settings.thresholds.get(m, 0.0) for m in names]
    decided = decide(frame[with_thr], settings) if with_thr.any() else None
    loose = decide(frame[~with_thr], settings.replace(gating="significance")) if (~with_thr).any() else None
    out = pd.concat([d for d in (decided, loose) if d is not None]).sort_index(kind="stable")
    status = np.where(out["degraded"].to_numpy(bool), "degraded", "ok").astype(object)
    thr = np.array([m in settings.thresholds for m in out["metric"]])
    status[~thr] = np.where(out["degraded"].to_numpy(bool)[~thr], "changed, no threshold", "no threshold")
    status[out["reason"].to_numpy(object) == "undefined_current"] = "undefined"
    no_base = ~np.isfinite(pd.to_numeric(out["baseline"], errors="coerce").to_numpy(float))
    status[no_base] = "no baseline"
    out["status"] = status
    out.loc[~thr, "threshold"] = np.nan
    return out.reset_index(drop=True)


def history_frame(history: Any) -> pd.DataFrame:
    """One row per labelled batch with per-metric columns, time-ordered.

    Accepts ``Store.history()`` output or a list of :class:`perfkit.store.BatchRecord`.
    Columns: ``timestamp``, ``batch_id``, ``segment``, ``family`` (the tracking call: records
    tracked together by one call share it), ``performance_score`` and per metric ``M``,
    ``M_se``, ``M_n`` and, for proportions, ``M_successes`` / ``M_trials``.
    """
    if isinstance(history, pd.DataFrame):
        return history.sort_values("timestamp", kind="stable").reset_index(drop=True)
    rows = []
    for i, r in enumerate(history):
        if r.labels_pending:
            continue
        call = (r.metadata or {}).get("call_id")
        row = {"timestamp": r.timestamp, "batch_id": r.batch_id, "segment": r.segment,
               "family": f"call:{call}" if call is not None else f"record:{i}",
               "performance_score": r.performance_score if r.performance_score is not None else np.nan}
        for m, v in r.metrics.items():
            row[m] = np.nan if v.get("value") is None else v["value"]
            row[f"{m}_se"] = np.nan if v.get("se") is None else v["se"]
            row[f"{m}_n"] = np.nan if v.get("n") is None else v["n"]
            if v.get("successes") is not None:
                row[f"{m}_successes"] = v["successes"]
                row[f"{m}_trials"] = v["trials"]
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values("timestamp", kind="stable").reset_index(drop=True)


ESTIMATED_ALERT = "estimated_performance_degradation"


def estimated_frame(history: Any) -> pd.DataFrame:
    """One row per batch that was tracked before its labels arrived, from its stored
    label-free estimate (``metadata["estimated_metrics"]``), time-ordered.

    The batch may be pending still or completed since (a completed batch keeps the estimate
    it had). Columns as :func:`history_frame`, values being the estimates; each batch is its
    own ``family`` (the tracker decides a pending batch on its own).
    """
    if isinstance(history, pd.DataFrame):
        return history if history.empty else history.sort_values("timestamp", kind="stable").reset_index(drop=True)
    rows = []
    for i, r in enumerate(history):
        est = (r.metadata or {}).get("estimated_metrics")
        if not est:
            continue
        row = {"timestamp": r.timestamp, "batch_id": r.batch_id, "segment": r.segment, "family": f"estimate:{i}"}
        for m, v in est.items():
            row[m] = np.nan if v.get("value") is None else v["value"]
            row[f"{m}_se"] = np.nan if v.get("se") is None else v["se"]
            row[f"{m}_n"] = np.nan if v.get("n") is None else v["n"]
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values("timestamp", kind="stable").reset_index(drop=True)


def _score_se_frame(frame: pd.DataFrame) -> np.ndarray:
    """:func:`perfkit.metrics.performance_score_se` for every row of a history frame."""
    B = len(frame)
    num = np.zeros(B)
    den = np.zeros(B)
    for name, spec in METRICS.items():
        if spec.score_weight <= 0 or name not in frame:
            continue
        v = frame[name].to_numpy(float)
        se = frame[f"{name}_se"].to_numpy(float) if f"{name}_se" in frame else np.full(B, np.nan)
        ok = np.isfinite(v) & np.isfinite(se)
        num += np.where(ok, spec.score_weight * se, 0.0)
        den += np.where(ok, spec.score_weight, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _check_replay_args(history: Any, baseline: Any, settings: Any, metrics: Any) -> None:
    """The boundary of :func:`replay` / :func:`replay_decisions`: wrong arguments are named (they
    used to fail deep inside with a raw KeyError / AttributeError / TypeError)."""
    from perfkit.store.records import BatchRecord

    if isinstance(history, pd.DataFrame):
        if "timestamp" not in history.columns:
            raise ValidationError("history has no 'timestamp' column: pass Store.history() / "
                                  "tracker.get_history() output or a list of BatchRecords", parameter="history")
    elif not isinstance(history, (list, tuple)) or not all(isinstance(r, BatchRecord) for r in history):
        raise InputTypeError("history must be a DataFrame (Store.history()) or a list of BatchRecords, got "
                             f"{type(history).__name__}", parameter="history")
    if not isinstance(baseline, Mapping) or not all(isinstance(v, MetricValue) for v in baseline.values()):
        raise InputTypeError("baseline must be a MetricReport (e.g. tracker.get_baseline()) or a mapping "
                             f"name -> MetricValue, got {type(baseline).__name__}", parameter="baseline")
    if not isinstance(settings, DetectionSettings):
        raise InputTypeError(f"settings must be a DetectionSettings (config.detection), got {type(settings).__name__}",
                             parameter="settings")
    if isinstance(metrics, str):
        raise InputTypeError(f"metrics must be a list of metric names, got the str {metrics!r}", parameter="metrics")
    unknown = [m for m in metrics or () if m not in METRICS]
    if unknown:  # used to be dropped silently: no alerts, no error
        raise ValidationError(f"metrics {unknown} are not metric names; valid: {', '.join(sorted(METRICS))}",
                              parameter="metrics")


def replay_decisions(
    history: Any,
    baseline: MetricReport | Mapping[str, MetricValue],
    settings: DetectionSettings,
    *,
    metrics: Sequence[str] | None = None,
    estimated: bool = False,
) -> pd.DataFrame:
    """Every decision the tracker would have made over a history: :func:`decide` output.

    One row per (batch, metric, scope) with the frame's ``timestamp`` and ``batch_id``;
    ``family`` groups the rows of one tracking call. :func:`replay` turns it into alerts.
    ``estimated=True``: the decisions on the label-free estimates of the batches tracked
    before their labels (:func:`estimated_frame`; batch scope only, as the tracker).
    """
    _check_replay_args(history, baseline, settings, metrics)
    frame = estimated_frame(history) if estimated else history_frame(history)
    if frame.empty:
        return decide(pd.DataFrame(columns=["family", "metric", "value"]), settings).assign(
            timestamp=pd.Series(dtype="datetime64[ns, UTC]"), batch_id=pd.Series(dtype=object))
    B = len(frame)
    if "family" not in frame:
        frame["family"] = np.arange(B)
    names = [m for m in (metrics or settings.thresholds) if m in settings.thresholds and m in frame.columns
             and m in baseline]
    seg = (frame["segment"] if "segment" in frame else pd.Series([None] * B)).to_numpy(object)
    checked = frame["_checked"].to_numpy(bool) if "_checked" in frame else np.ones(B, bool)

    def col(c: str) -> np.ndarray:
        return frame[c].to_numpy(float) if c in frame else np.full(B, np.nan)

    parts = []
    common = {"family": frame["family"].to_numpy(object), "segment": seg, "_row": np.arange(B)}
    for m in names:
        base = baseline[m]
        bcols = {"baseline": base.value, "baseline_se": base.se, "baseline_successes": base.successes,
                 "baseline_trials": base.trials}
        parts.append(pd.DataFrame({**common, "metric": m, "scope": "batch", "value": col(m), "se": col(f"{m}_se"),
                                   "n": col(f"{m}_n"), "successes": col(f"{m}_successes"),
                                   "trials": col(f"{m}_trials"), **bcols}))
        k = 1 if estimated else int(settings.window_batches or 1)
        kind = _window_kind(m)
        if k > 1 and kind is not None:
            key = pd.Series(seg, dtype=object).map(lambda x: ("s", x)).to_numpy()
            pieces = _window_sums(kind, col(f"{m}_n"), col(m), col(f"{m}_se"), col(f"{m}_successes"),
                                  col(f"{m}_trials"))
            rolled = tuple(pd.Series(x).groupby(key, sort=False).rolling(k, min_periods=k).sum()
                           .reset_index(level=0, drop=True).sort_index().to_numpy() for x in pieces)
            v, se_w, succ_w, trials_w, n_w = _window_from_sums(kind, rolled)
            parts.append(pd.DataFrame({**common, "metric": m, "scope": "window", "value": v, "se": se_w, "n": n_w,
                                       "successes": np.nan if succ_w is None else succ_w,
                                       "trials": np.nan if trials_w is None else trials_w, **bcols}))
    if "performance_score" in frame and not estimated:
        parts.append(pd.DataFrame({**common, "metric": "performance_score", "scope": "floor",
                                   "value": col("performance_score"), "se": _score_se_frame(frame)}))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["family", "metric", "value"])
    rows = rows[checked[rows["_row"].to_numpy(int)]] if len(rows) else rows
    decided = decide(rows, settings)
    r = decided["_row"].to_numpy(int) if len(decided) else np.zeros(0, int)
    decided["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).to_numpy()[r] if B else []
    decided["batch_id"] = (frame["batch_id"] if "batch_id" in frame else pd.Series(range(B))).to_numpy(object)[r]
    return decided.drop(columns="_row", errors="ignore")


_ALERT_COLUMNS = ["timestamp", "batch_id", "segment", "metric", "alert_type", "severity", "value", "baseline",
                  "degradation", "p_value", "adjusted_p_value"]


def _alert_rows(decided: pd.DataFrame) -> pd.DataFrame:
    """Alerts raised by decided rows: degradations, retraining triggers, low performance."""
    deg = decided[decided["degraded"].to_numpy(bool)]
    if deg.empty:
        return pd.DataFrame(columns=_ALERT_COLUMNS)
    floor = deg["scope"].to_numpy(object) == "floor"
    out = deg.assign(alert_type=np.where(floor, "low_performance", "performance_degradation"))
    out.loc[floor, "metric"] = None
    out.loc[floor, "baseline"] = out.loc[floor, "threshold"]
    out.loc[floor, ["degradation", "p_value", "adjusted_p_value"]] = np.nan
    retrain = deg[deg["retraining"].to_numpy(bool)].assign(alert_type="retraining_trigger")
    both = pd.concat([out, retrain], ignore_index=True)
    return both.sort_values("timestamp", kind="stable").reset_index(drop=True)


def replay(
    history: Any,
    baseline: MetricReport | Mapping[str, MetricValue],
    settings: DetectionSettings,
    *,
    metrics: Sequence[str] | None = None,
    cooldown_hours: float = 24.0,
    model: str = "model",
    estimates: Any = None,
) -> Any:
    """Which alerts would have fired over a stored history under ``settings``.

    The tracker's decision (:func:`perfkit.analysis.decide`: tests, one family per tracking
    call, window check, severity, retraining, low performance) and its cooldown
    (:func:`perfkit.alerts.apply_cooldown`), vectorized over the batches (a year of hourly
    batches in well under a second).

    Parameters
    ----------
    history : DataFrame
        :func:`history_frame` output (or ``Store.history()``), or a list of
        :class:`perfkit.store.BatchRecord`.
    baseline : MetricReport
    settings : DetectionSettings
    metrics : sequence of str, optional
        Metrics to check (default: those with a threshold present in the history).
    cooldown_hours : float
    estimates : DataFrame or list of BatchRecord, optional
        Batches tracked before their labels, with their label-free estimates
        (:func:`estimated_frame`); default: taken from ``history`` when it is a list of
        records (pending ones included). Their decisions raise
        ``estimated_performance_degradation`` alerts (own cooldown key; no retraining or
        low-performance alerts), exactly as the tracker does for a pending batch.

    Returns
    -------
    DataFrame
        One row per alert that would be raised: timestamp, batch_id, segment, metric,
        alert_type, severity, value, baseline, degradation, p_value, adjusted_p_value, status
        (``"fires"`` or ``"suppressed"``) and suppressed_by (row index of the alert that
        suppresses it).
    """
    if isinstance(cooldown_hours, bool) or not isinstance(cooldown_hours, (int, float, np.floating)) \
            or not 0 <= float(cooldown_hours) < math.inf:
        raise ValidationError(f"cooldown_hours must be a number >= 0, got {cooldown_hours!r}",
                              parameter="cooldown_hours")
    decided = replay_decisions(history, baseline, settings, metrics=metrics)
    out = _alert_rows(decided)[_ALERT_COLUMNS].reset_index(drop=True) if len(decided) else \
        pd.DataFrame(columns=_ALERT_COLUMNS)
    if estimates is None and not isinstance(history, pd.DataFrame):
        estimates = history
    if estimates is not None and len(estimates):
        est = replay_decisions(estimates, baseline, settings, metrics=metrics, estimated=True)
        est = est[est["degraded"].to_numpy(bool)] if len(est) else est
        if len(est):
            est = est.assign(alert_type=ESTIMATED_ALERT)[_ALERT_COLUMNS]
            out = pd.concat([out, est], ignore_index=True) if len(out) else est.reset_index(drop=True)
            out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    keys = list(zip(out["segment"], out["metric"], out["alert_type"], strict=True))
    status, by = apply_cooldown(pd.to_datetime(out["timestamp"], utc=True).dt.tz_localize(None).to_numpy(
        "datetime64[ns]") if len(out) else np.zeros(0, "datetime64[ns]"), keys, out["severity"].tolist(),
        cooldown_hours)
    out["status"] = status
    out["suppressed_by"] = by
    return out


def build_alerts(
    findings: Sequence[MetricFinding],
    settings: DetectionSettings,
    *,
    model: str,
    timestamp: datetime,
    segment: str | None = None,
    batch_id: str | None = None,
    model_version: str | None = None,
    performance_score: float = math.nan,
    low_performance: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    alert_type: str = "performance_degradation",
    low_segments: Sequence[tuple[str | None, float]] = (),
) -> list[Alert]:
    """Alerts raised by decided findings: one per degraded metric, low performance, retraining.

    ``low_segments``: ``(segment, performance score)`` of the segments of a segmented call
    whose score is credibly below the floor (one ``low_performance`` alert each).

    ``low_performance``: the floor decision of :func:`decide`; when None, the point rule
    (score below ``low_performance_threshold``) is used. ``alert_type`` names the degradation
    alerts (``"estimated_performance_degradation"`` for label-free estimates, which have their
    own cooldown key and never trigger retraining or low-performance alerts on their own).
    """
    estimated = alert_type != "performance_degradation"
    alerts: list[Alert] = []
    common = dict(timestamp=timestamp, batch_id=batch_id, model_version=model_version,
                  metadata=dict(metadata or {}))

    def from_finding(f: MetricFinding, alert_type: str, message: str = "") -> Alert:
        meta = dict(common["metadata"])
        if f.scope == "window":
            meta["window_batches"] = settings.window_batches
        return Alert(
            model=model, segment=f.segment if f.segment is not None else segment, metric=f.metric,
            alert_type=alert_type, severity=f.severity, baseline=f.baseline, current=f.current,
            ci_lower=f.ci_lower, ci_upper=f.ci_upper, relative_change=f.relative_change,
            p_value=f.p_value, adjusted_p_value=f.adjusted_p_value, message=message,
            timestamp=timestamp, batch_id=batch_id, model_version=model_version, metadata=meta,
        )

    alerts.extend(from_finding(f, alert_type) for f in findings if f.degraded)
    if estimated:
        return alerts
    if low_performance is None:
        low_performance = math.isfinite(performance_score) and performance_score < settings.low_performance_threshold
    lows = [(segment, performance_score)] if low_performance else []
    for seg, score in [*lows, *low_segments]:
        alerts.append(
            Alert(
                model=model, segment=seg, metric=None, alert_type="low_performance",
                severity="critical", baseline=settings.low_performance_threshold,
                current=score,
                message=(f"performance score {score:.3f} is credibly below "
                         f"{settings.low_performance_threshold:g}"),
                **common,
            )
        )
    for f in (f for f in findings if f.degraded and f.retraining):
        alerts.append(from_finding(
            f, "retraining_trigger",
            f"{f.metric} degraded by {f.degradation:.1%}, beyond the "
            f"auto-retraining threshold {settings.auto_retraining_threshold:.0%}",
        ))
    return alerts


def assess(
    current: MetricReport,
    baseline: MetricReport,
    settings: DetectionSettings,
    *,
    model: str,
    timestamp: datetime,
    segment: str | None = None,
    batch_id: str | None = None,
    model_version: str | None = None,
    performance_score: float = math.nan,
    metadata: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    baseline_version: int | None = None,
    window_entries: Sequence[Mapping[str, Mapping[str, Any]]] | None = None,
    segments: Sequence[tuple[str | None, MetricReport, MetricReport, Sequence[Mapping[str, Any]] | None]]
    | None = None,
    alert_type: str = "performance_degradation",
) -> DegradationAnalysis:
    """Findings and alerts for one tracking call: :func:`decide` on one family.

    ``window_entries``: stored metric dicts of the last ``window_batches`` batches including
    this one; the window's metrics are tested in the same family and alert when the batch
    alone did not. ``segments``: further ``(segment, current, baseline, window_entries)`` of
    the same call, tested in the same family (one tracking call, one family: the whole
    model's rows get half of its weight, the segments share the other half, see
    :func:`perfkit.analysis.decide`); each segment's performance score is also held to the
    floor. ``baseline=None``: the whole batch has no baseline yet (only its floor and the
    segments are checked).
    ``alert_type="estimated_performance_degradation"``: ``current`` holds label-free estimates
    (:func:`perfkit.metrics.estimate`); the same decision, alerts of that type only.
    """
    names = [m for m in (metrics or settings.thresholds) if m in settings.thresholds]
    main = [(segment, current, baseline, window_entries)] if baseline is not None else []
    groups = [*main, *(segments or ())]
    rows: list[dict[str, Any]] = []
    reports: dict[tuple[str | None, str], Mapping[str, MetricValue]] = {}
    for seg, cur, base, entries in groups:
        rows += decision_rows([(seg, cur, base)], names)
        reports[(seg, "batch")] = cur
        if entries and settings.window_batches > 1 and len(entries) >= settings.window_batches:
            wrep = window_report(entries, [m for m in names if m in base])
            rows += decision_rows([(seg, wrep, base)], list(wrep), scope="window")
            reports[(seg, "window")] = wrep
    # the floor: the whole batch and, in a segmented call, every segment (Holm across them)
    floors = [(segment, performance_score, performance_score_se(current))]
    if alert_type == "performance_degradation":
        for seg, cur, _, _ in segments or ():
            if isinstance(cur, MetricReport):
                floors.append((seg, performance_score_of(cur, cur.task), performance_score_se(cur)))
    rows += [{"family": 0, "segment": seg, "metric": "performance_score", "scope": "floor", "value": v, "se": se}
             for seg, v, se in floors]
    records = _decide_records(rows, settings)
    findings = [_finding(r, reports[(r["segment"], r["scope"])].get(r["metric"])) for r in records
                if r["scope"] == "batch"]
    window = [_finding(r, reports[(r["segment"], r["scope"])].get(r["metric"])) for r in records
              if r["scope"] == "window"]
    floor_flags = [bool(r["degraded"]) for r in records if r["scope"] == "floor"]
    low = floor_flags[0]
    low_segments = [(seg, v) for (seg, v, _), flag in zip(floors[1:], floor_flags[1:], strict=True) if flag]
    alerts = build_alerts(
        [*findings, *window], settings, model=model, timestamp=timestamp, segment=segment, batch_id=batch_id,
        model_version=model_version, performance_score=performance_score, low_performance=low,
        metadata=metadata, alert_type=alert_type, low_segments=low_segments,
    )
    return DegradationAnalysis(
        degradation_detected=any(f.degraded for f in (*findings, *window)),
        window_findings=tuple(window),
        findings=tuple(findings),
        alerts=tuple(alerts),
        retraining_recommended=any(a.alert_type == "retraining_trigger" for a in alerts),
        performance_score=performance_score,
        low_performance=low,
        settings=settings,
        baseline_version=baseline_version,
    )
