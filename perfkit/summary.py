"""Summaries, the JSON report, trend charts and prediction drift over a stored history.

Everything here reads the store and recomputes from states: windows are merges of the
batches' states (a weekly value is the value of the week's merged state, never a mean of
batch values).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from perfkit._checks import check_days, check_timestamp
from perfkit._json import json_safe as _clean
from perfkit.analysis import threshold_value
from perfkit.analysis.drift import (
    compare_distributions,
    compare_distributions_many,
    drift_performance_correlation,
)
from perfkit.analysis.trend import analyze_trend
from perfkit.metrics import (
    METRICS,
    ClassificationState,
    evaluate,
    get_metric,
    state_from_dict,
)
from perfkit.metrics.layout import sorted_labels
from perfkit.metrics.state import align_classes, merge_dicts_to_state

if TYPE_CHECKING:
    from perfkit.config import PerformanceConfig
    from perfkit.store import Store

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "PerformanceSummary",
    "build_report",
    "build_summary",
    "drift_analysis",
    "baseline_status",
    "metric_series",
    "window_records",
    "trends_chart",
]

REPORT_SCHEMA_VERSION = "1.0"
from perfkit.store import ALL_SEGMENTS as _ALL  # noqa: E402


@dataclass(frozen=True)
class PerformanceSummary(Mapping[str, Any]):
    """The seed's summary (``total_records``, ``performance_trend['trend_direction']``,
    ``degradation_summary['total_alerts']`` ...) as a read-only mapping."""

    data: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def to_dict(self) -> dict[str, Any]:
        return _clean(dict(self.data))

    def to_frame(self) -> pd.DataFrame:
        """Latest value and trend of each metric, one row per metric."""
        rows = []
        for m, v in self.data.get("latest_metrics", {}).items():
            t = self.data.get("metric_trends", {}).get(m, {})
            rows.append({"metric": m, **{k: v.get(k) for k in ("value", "ci_lower", "ci_upper")},
                         "window_value": self.data.get("window_metrics", {}).get(m, {}).get("value"),
                         "trend_direction": t.get("direction"), "slope_per_day": t.get("slope_per_day")})
        return pd.DataFrame(rows, columns=["metric", "value", "ci_lower", "ci_upper", "window_value",
                                           "trend_direction", "slope_per_day"])


def window_records(store: Store, model: str, segment: Any, start, end, include_pending=False):
    kw = {} if segment is _ALL else {"segment": segment}
    return store.records(model, start=start, end=end, include_pending=include_pending, **kw)


def baseline_status(store: Store, config: PerformanceConfig, model: str, segment: Any = _ALL) -> str:
    """Which baseline the degradation checks use, in words (announced by summary, review, CLI).

    ``"explicit (version 2, user)"``, ``"first 5 batches"`` or ``"none yet: 3 more labelled batches
    needed"``.
    """
    seg = None if segment is _ALL else segment
    b = store.get_baseline(model, segment=seg)
    if b is not None:
        return f"first {config.baseline_batches} batches" if str(b.source).startswith("first_") else \
            f"explicit (version {b.version}, {b.source})"
    have = store.count(model, segment=segment, include_pending=False)  # counted in SQL
    need = max(config.baseline_batches - have, 1)
    return f"none yet: {need} more labelled batch{'es' if need != 1 else ''} needed"


def _window(days: float, end: datetime | None) -> tuple[datetime, datetime]:
    days = check_days(days)
    end = check_timestamp(end, "end", none_is_now=True)
    return end - timedelta(days=days), end + timedelta(microseconds=1)


def metric_series(records: list, *, freq: str | None = None, level: float = 0.95,
                  metrics: list[str] | None = None) -> pd.DataFrame:
    """Tidy series of metric values per batch (``freq=None``) or per merged window (``"1D"``, ``"7D"``).

    Columns: timestamp, metric, value, ci_lower, ci_upper, se, n, n_batches.
    """
    rows: list[dict] = []
    if not records:
        return pd.DataFrame(columns=["timestamp", "metric", "value", "ci_lower", "ci_upper", "se", "n", "n_batches"])
    if freq is None:
        groups = [(r.timestamp, [r]) for r in records]
    else:
        frame = pd.DataFrame({"ts": [r.timestamp for r in records], "i": range(len(records))})
        frame["bucket"] = pd.to_datetime(frame["ts"], utc=True).dt.floor(freq)
        groups = [(b, [records[i] for i in g["i"]]) for b, g in frame.groupby("bucket")]
    if freq is None:  # one point per stored batch: columns straight from the stored metric dicts
        keep = None if metrics is None else set(metrics)
        cols: dict[str, list] = {c: [] for c in ("i", "metric", "value", "ci_lower", "ci_upper", "se")}
        for i, r in enumerate(records):
            for m, v in r.metrics.items():
                if keep is not None and m not in keep:
                    continue
                cols["i"].append(i)
                cols["metric"].append(m)
                cols["value"].append(v.get("value"))
                cols["ci_lower"].append(v.get("ci_lower"))
                cols["ci_upper"].append(v.get("ci_upper"))
                cols["se"].append(v.get("se"))
        at = np.asarray(cols.pop("i"), dtype=np.int64)
        out = pd.DataFrame({"timestamp": _utc_index(records)[at], **cols,
                            "n": np.asarray([r.sample_count for r in records], dtype=np.int64)[at]})
        for c in ("value", "ci_lower", "ci_upper", "se"):
            out[c] = _floats(out[c].tolist())
        out["n_batches"] = 1
        return out
    for ts, recs in groups:
        if len(recs) == 1 and freq is None:
            report = {k: v for k, v in recs[0].metrics.items()}
            vals = {k: (v.get("value"), v.get("ci_lower"), v.get("ci_upper"), v.get("se")) for k, v in report.items()}
            n = recs[0].sample_count
        else:
            st = merge_dicts_to_state([r.state for r in recs], for_evaluation=True)
            rep = evaluate(st, level=level)
            vals = {k: (v.value, v.ci_lower, v.ci_upper, v.se) for k, v in rep.items()}
            n = st.n
        stamp = pd.Timestamp(ts)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
        for m, (v, lo, hi, se) in vals.items():
            if metrics is not None and m not in metrics:
                continue
            rows.append({"timestamp": stamp,
                         "metric": m, "value": _nan(v), "ci_lower": _nan(lo), "ci_upper": _nan(hi), "se": _nan(se),
                         "n": n, "n_batches": len(recs)})
    return pd.DataFrame(rows, columns=["timestamp", "metric", "value", "ci_lower", "ci_upper", "se", "n", "n_batches"])


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _floats(values: list) -> np.ndarray:
    """Stored numbers (None where missing) as a float array with NaN."""
    try:
        return np.array(values, dtype=float)  # None becomes NaN
    except (TypeError, ValueError):
        return pd.array(values, dtype="Float64").to_numpy(dtype="float64", na_value=math.nan)


def _utc_index(records: list) -> pd.DatetimeIndex:
    """The records' timestamps as a UTC DatetimeIndex (naive ones taken as UTC)."""
    idx = pd.DatetimeIndex(pd.to_datetime([r.timestamp for r in records], utc=True))
    return idx.as_unit("ns") if hasattr(idx, "as_unit") else idx


@dataclass(frozen=True)
class _BatchTable:
    """Per-batch columns of the labelled records: times, rows, and each metric's value and se."""

    times: pd.DatetimeIndex
    n: np.ndarray
    tasks: list
    values: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    has: dict[str, np.ndarray]  # the batches that have an entry for the metric (its value may be None)
    score: np.ndarray

    @classmethod
    def of(cls, records: list, needed: set[str] | None = None) -> _BatchTable:
        """``needed``: the metrics whose columns are built (default: all); ``has`` lists every
        metric present in some record."""
        names: dict[str, None] = {}
        for r in records:
            names.update(dict.fromkeys(r.metrics))
        empty: dict[str, Any] = {}
        values, se = {}, {}
        has: dict[str, Any] = dict.fromkeys(names)
        for m in names:
            if needed is not None and m not in needed:
                continue
            entries = [r.metrics.get(m) for r in records]
            has[m] = np.fromiter((e is not None for e in entries), bool, len(entries))
            entries = [e or empty for e in entries]
            values[m] = _floats([e.get("value") for e in entries])
            se[m] = _floats([e.get("se") for e in entries])
        return cls(_utc_index(records), np.asarray([r.sample_count for r in records], dtype=float),
                   [r.task for r in records], values, se, has,
                   _floats([r.performance_score for r in records]))

    def score_se(self) -> np.ndarray:
        """``performance_score_se`` of every batch, from its stored components."""
        num = np.zeros(len(self.n))
        den = np.zeros(len(self.n))
        for name, spec in METRICS.items():
            if spec.score_weight <= 0 or self.has.get(name) is None:
                continue
            ok = np.isfinite(self.values[name]) & np.isfinite(self.se[name])
            ok &= np.fromiter((t is None or t in spec.tasks for t in self.tasks), bool, len(self.tasks))
            num += np.where(ok, spec.score_weight * np.where(ok, self.se[name], 0.0), 0.0)
            den += np.where(ok, spec.score_weight, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), math.nan)


def _threshold_value(config: PerformanceConfig, metric: str, baseline_value: float | None) -> float | None:
    return threshold_value(metric, baseline_value, config.detection)


def _trend(config: PerformanceConfig, series: pd.DataFrame, metric: str, baseline_value: float | None):
    s = series[series["metric"] == metric]
    return _trend_of(config, metric, s["timestamp"], s["value"].to_numpy(float), s["se"].to_numpy(float),
                     s["n"].to_numpy(float), baseline_value)


def _trend_of(config: PerformanceConfig, metric: str, times: Any, values: np.ndarray, se: np.ndarray,
              n: np.ndarray, baseline_value: float | None):
    """The trend of one metric's points (long per-batch histories are fitted on daily points,
    each day's batches weighted by their rows: see :func:`perfkit.analysis.analyze_trend`)."""
    hib = get_metric(metric).higher_is_better if metric != "performance_score" else True
    threshold = _threshold_value(config, metric, baseline_value) if metric != "performance_score" else None
    if not len(values):
        return analyze_trend([], [], [], higher_is_better=bool(hib), min_samples=config.min_samples_for_trend,
                             metric=metric)
    return analyze_trend(
        pd.Series(times) if not isinstance(times, (pd.Series, pd.Index)) else times, values, se ** 2,
        higher_is_better=bool(hib), tolerance=config.trend_tolerance, min_samples=config.min_samples_for_trend,
        threshold=threshold, metric=metric, weights=n,
    )


def _estimates(records: list, tracked: list[str]) -> list[dict[str, Any]]:
    """Label-free estimates kept with the batches (pending ones, and completed ones beside
    their realized values)."""
    out = []
    for r in records:
        est = (r.metadata or {}).get("estimated_metrics")
        if not est:
            continue
        out.append({
            "batch_id": r.batch_id, "timestamp": r.timestamp.isoformat(), "segment": r.segment,
            "labels_pending": r.labels_pending,
            "estimated": {m: {k: est[m].get(k) for k in ("value", "ci_lower", "ci_upper")} for m in tracked if m in est},
            "realized": None if r.labels_pending else
            {m: (r.metrics.get(m) or {}).get("value") for m in tracked if m in est},
        })
    return out


def build_summary(store: Store, config: PerformanceConfig, *, days: float = 30, model: str, segment: Any = _ALL,
                  end: datetime | None = None, freq: str | None = "auto") -> PerformanceSummary:
    """See :meth:`ModelPerformanceTracker.get_performance_summary`."""
    return _summary_parts(store, config, days=days, model=model, segment=segment, end=end, freq=freq)[0]


def _summary_parts(store: Store, config: PerformanceConfig, *, days: float, model: str, segment: Any,
                   end: datetime | None, freq: str | None) -> tuple[PerformanceSummary, list, list, pd.DataFrame,
                                                                   str | None, pd.DataFrame]:
    """The summary and what it was built from: (summary, all records, labelled records, series, freq,
    alerts), so that :func:`build_report` reads and merges each window once."""
    start, stop = _window(days, end)
    all_recs = window_records(store, model, segment, start, stop, include_pending=True)
    recs = [r for r in all_recs if not r.labels_pending]
    segments = sorted({r.segment for r in recs}, key=lambda s: (s is not None, s or ""))
    if freq == "auto":
        freq = "1D" if (segment is _ALL and len(segments) > 1) else None
    baseline = store.get_baseline(model, segment=None if segment is _ALL else segment)
    base_report = evaluate(state_from_dict(baseline.state), level=config.confidence_level) if baseline is not None else None
    tracked = list(config.metrics_to_track)
    # per batch: columns straight from the stored metric values; per day (segments): merged windows
    scored = {name for name, spec in METRICS.items() if spec.score_weight > 0}
    table = _BatchTable.of(recs, needed=set(config.metrics_to_track) | scored)
    series = metric_series(recs, freq=freq, level=config.confidence_level) if freq is not None else None
    latest: dict[str, Any] = {}
    if recs:
        for m, v in recs[-1].metrics.items():
            latest[m] = {**v, "timestamp": recs[-1].timestamp.isoformat()}
    window: dict[str, Any] = {}
    if recs:
        wstate = store.merged_state(recs, for_evaluation=True)
        window = {k: v.to_dict() for k, v in evaluate(wstate, level=config.confidence_level).items()}
    trends = {}
    available = set(table.values) if series is None else set(series["metric"]) if len(series) else set()
    for m in tracked:
        if m not in available:
            continue
        bv = base_report[m].value if base_report is not None and m in base_report else None
        if series is None:
            keep = table.has[m]  # the batches with an entry (a missing value counts as dropped)
            trend = _trend_of(config, m, table.times[keep], table.values[m][keep], table.se[m][keep],
                              table.n[keep], bv)
        else:
            trend = _trend(config, series, m, bv)
        trends[m] = trend.to_dict()
    keep = np.isfinite(table.score)
    perf = _trend_of(config, "performance_score", table.times[keep], table.score[keep], table.score_se()[keep],
                     table.n[keep], None).to_dict()
    perf["trend_direction"] = perf.get("direction")
    alerts = store.alerts(model, start=start, end=stop, **({} if segment is _ALL else {"segment": segment}))
    by_type = alerts.groupby("alert_type").size().to_dict() if len(alerts) else {}
    by_sev = alerts.groupby("severity").size().to_dict() if len(alerts) else {}
    status = alerts["status"].value_counts().to_dict() if len(alerts) else {}
    seg_rows = {}
    if len(segments) > 1 or (segments and segments[0] is not None):
        for s in segments:
            srecs = [r for r in recs if r.segment == s]
            st = store.merged_state(srecs, for_evaluation=True)
            rep = evaluate(st, level=config.confidence_level)
            seg_rows[s if s is not None else "(all)"] = {
                "records": len(srecs), "samples": st.n,
                "metrics": {k: v.to_dict() for k, v in rep.items() if k in tracked},
            }
    data = {
        "model": model,
        "segment": None if segment is _ALL else segment,
        "period": {"start": start.isoformat(), "end": (stop - timedelta(microseconds=1)).isoformat(), "days": days},
        "total_records": len(all_recs),
        "labelled_records": len(recs),
        "pending_labels": len(all_recs) - len(recs),
        "total_samples": int(sum(r.sample_count for r in all_recs)),
        "task": recs[-1].task if recs else None,
        "performance_trend": perf,
        "metric_trends": trends,
        "latest_metrics": latest,
        "window_metrics": window,
        "degradation_summary": {
            "total_alerts": int(len(alerts)),
            "delivered_or_pending": int(len(alerts) - status.get("suppressed", 0)),
            "suppressed": int(status.get("suppressed", 0)),
            "failed_deliveries": int(status.get("failed", 0)),
            "by_type": {str(k): int(v) for k, v in by_type.items()},
            "by_severity": {str(k): int(v) for k, v in by_sev.items()},
            "retraining_triggers": int(by_type.get("retraining_trigger", 0)),
        },
        "baseline": None if baseline is None else {
            "version": baseline.version, "source": baseline.source, "sample_count": baseline.sample_count,
            "model_version": baseline.model_version, "created_at": baseline.created_at.isoformat(),
            "metrics": {k: v.to_dict() for k, v in base_report.items() if k in tracked} if base_report else {},
        },
        "segments": seg_rows,
        "baseline_status": baseline_status(store, config, model, segment),
        "estimates": _estimates(all_recs, tracked),
        "notes": [f"{r.batch_id}: {n}" for r in all_recs for n in (r.metadata or {}).get("notes", [])],
        "model_identity": store.model_identity(model),
        "points": "batches" if freq is None else f"windows:{freq}",
    }
    return PerformanceSummary(data), all_recs, recs, series, freq, alerts


def drift_analysis(store: Store, config: PerformanceConfig, *, days: float = 30, model: str | None = None,
                   segment: Any = _ALL, end: datetime | None = None, bins: int = 10) -> dict[str, Any]:
    """Prediction drift of each batch against the baseline, and its correlation with degradation.

    Works from the stored states alone, so batches whose labels have not arrived are included.
    Classification: predicted-class counts (chi-square) and, with scores, the positive-class
    (binary) score distribution coarsened to ``bins`` baseline-quantile bins (PSI, JS
    distance, KS-type test). Regression: standardized shift of the mean prediction.
    """
    model = model or config.model_name
    start, stop = _window(days, end)
    recs = window_records(store, model, segment, start, stop, include_pending=True)
    return _drift(store, config, model, recs, bins)


def _drift(store: Store, config: PerformanceConfig, model: str, recs: list, bins: int = 10) -> dict[str, Any]:
    """:func:`drift_analysis` of the records ``recs`` (labelled or not) of ``model``."""
    out: dict[str, Any] = {"model": model, "batches": [], "correlation": {}, "reason": None}
    cache: dict[Any, Any] = {}
    # drift reads predictions only: the fields only label-free estimates read are not decoded
    estimate_only = frozenset(f.name for f in ClassificationState.declared() if f.estimates)

    def baseline_of(seg):
        """Each batch is compared with its own segment's baseline (or the model's)."""
        if seg not in cache:
            b = store.get_baseline(model, segment=seg)
            if b is None:
                cache[seg] = None
            else:
                bstate = state_from_dict(b.state)
                starts = None
                if isinstance(bstate, ClassificationState) and bstate.has_scores:
                    ref = bstate.score_histogram()
                    cum = np.cumsum(ref) / max(ref.sum(), 1)
                    edges = np.unique(np.searchsorted(cum, np.linspace(0, 1, bins + 1)[1:-1]))
                    starts = np.r_[0, edges + 1]  # each coarse bin's first fine bin
                cache[seg] = (bstate, evaluate(bstate, level=config.confidence_level), starts)
        return cache[seg]

    # first pass: each batch's fields and the comparisons it needs; the comparisons of all
    # batches then run at once (compare_distributions_many: the same numbers as one by one)
    entries = []
    jobs: dict[tuple, tuple[list, list, list]] = {}
    results: list[Any] = []

    def submit(kind: str, ref: Any, cur: Any) -> int:
        ref, cur = np.asarray(ref), np.asarray(cur)
        results.append(None)
        if ref.ndim != 1 or ref.shape != cur.shape:  # compare_distributions says what is wrong
            results[-1] = compare_distributions(ref, cur, kind=kind)
        else:
            ids, refs, curs = jobs.setdefault((kind, ref.shape), ([], [], []))
            ids.append(len(results) - 1)
            refs.append(ref)
            curs.append(cur)
        return len(results) - 1

    for r in recs:
        found = baseline_of(r.segment)
        if found is None:
            continue
        bstate, brep, starts = found
        ref_hist = None if starts is None else _coarse_reference(cache, r.segment, bstate, starts)
        st = state_from_dict(_without(r.state, estimate_only))
        row: dict[str, Any] = {"batch_id": r.batch_id, "timestamp": r.timestamp.isoformat(), "segment": r.segment,
                               "labels_pending": r.labels_pending}
        cat = sc = None
        if isinstance(st, ClassificationState) and isinstance(bstate, ClassificationState):
            if st.classes != bstate.classes:  # the model's label set grew: compare in the union
                union = sorted_labels({*bstate.classes, *st.classes})
                bstate, st = align_classes(bstate, union), align_classes(st, union)
                ref_hist = None
            cat = submit("categorical", bstate.pred_counts, st.pred_counts)
            if starts is not None and st.has_scores:
                ref = ref_hist if ref_hist is not None else _coarse(bstate, starts)
                sc = submit("binned", ref, _coarse(st, starts))
        else:
            b, c = bstate.yhat, st.yhat
            sd = math.sqrt(b.variance(1)) if b.n > 1 else math.nan
            smd = (c.mean - b.mean) / sd if sd and math.isfinite(sd) else math.nan
            se = math.sqrt(b.variance(1) / b.n + (c.variance(1) / c.n if c.n > 1 else 0.0)) if b.n > 1 else math.nan
            from scipy import special  # 2 norm.sf(|z|), without importing scipy.stats

            p = float(2 * special.ndtr(-abs((c.mean - b.mean) / se))) if se and math.isfinite(se) else math.nan
            row.update({"psi": abs(smd), "standardized_mean_shift": smd, "p_value": p,
                        "drifted": bool(math.isfinite(p) and p < 0.05)})
        degradation = {}
        if not r.labels_pending:
            for m in config.detection.thresholds:
                if m in r.metrics and m in brep and r.metrics[m].get("value") is not None:
                    bv = brep[m].value
                    if math.isfinite(bv) and bv != 0:
                        hib = get_metric(m).higher_is_better
                        cv = r.metrics[m]["value"]
                        degradation[f"degradation_{m}"] = ((bv - cv) if hib else (cv - bv)) / abs(bv)
        entries.append((row, cat, sc, degradation))
    for (kind, _), (ids, refs, curs) in jobs.items():
        for i, res in zip(ids, compare_distributions_many(np.array(refs), np.array(curs), kind=kind), strict=True):
            results[i] = res
    rows = []
    for row, cat, sc, degradation in entries:
        if cat is not None:
            cres = results[cat]
            row.update({"class_psi": cres.psi, "class_p_value": cres.p_value})
            d = results[sc] if sc is not None else cres
            row.update({"psi": d.psi, "js_distance": d.js_distance, "p_value": d.p_value,
                        "drifted": d.drifted, "psi_label": d.psi_label})
        row.update(degradation)
        rows.append(row)
    out["batches"] = rows
    if not rows:
        out["reason"] = "no_baseline" if recs else "no_batches"
    frame = pd.DataFrame(rows)
    for m in config.detection.thresholds:
        col = f"degradation_{m}"
        if col in frame and "psi" in frame:
            out["correlation"][m] = drift_performance_correlation(frame["psi"].to_numpy(float),
                                                                  frame[col].to_numpy(float)).to_dict()
    return _clean(out)


def _coarse_reference(cache: dict, segment: Any, bstate: Any, starts: Any) -> Any:
    """The baseline's coarsened score histogram, computed once per segment (not once per batch)."""
    key = ("coarse", segment)
    if key not in cache:
        cache[key] = _coarse(bstate, starts)
    return cache[key]


def _without(d: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """``d`` without the keys ``names`` (``d`` itself when it has none of them)."""
    return {k: v for k, v in d.items() if k not in names} if any(k in d for k in names) else d


def _coarse(state: ClassificationState, starts: np.ndarray) -> np.ndarray:
    """``state.score_histogram()`` summed over the coarse bins that begin at ``starts``
    (``np.r_[0, edges + 1]``): ``np.add.reduceat(h, starts)``.

    Computed from the histograms' occupied cells (``SparseCounts.row``) without building the
    dense row of every batch (tens of thousands of bins, most empty).
    """
    out = np.zeros(len(starts), dtype=np.int64)
    for h in (state.hist_neg, state.hist_pos):
        if h is None:
            continue
        if not hasattr(h, "row"):  # a dense histogram
            out += np.add.reduceat(np.asarray(h)[0], starts)
            continue
        idx, counts = h.row(0)
        out += np.bincount(np.searchsorted(starts, idx, side="right") - 1, weights=counts,
                           minlength=len(starts)).astype(np.int64)
    return out


def build_report(store: Store, config: PerformanceConfig, *, days: float = 30, model: str,
                 end: datetime | None = None) -> dict[str, Any]:
    """The JSON report: summary, daily windows with intervals, trends, change points, alerts, drift.

    The document follows ``perfkit/report_schema.json`` (``schema_version`` field); NaN and
    infinite values are written as ``null`` and a ``reason`` says why where known.
    """
    # one clock for every part (end=None is "now") and each window read and merged once
    end = check_timestamp(end, "end", none_is_now=True)
    summary, all_recs, recs, series, freq, alerts = _summary_parts(store, config, days=days, model=model,
                                                                   segment=_ALL, end=end, freq="auto")
    daily = series if freq == "1D" else metric_series(recs, freq="1D", level=config.confidence_level)
    alert_list = [
        {"alert_id": a.alert_id, "timestamp": pd.Timestamp(a.timestamp).isoformat(), "alert_type": a.alert_type,
         "severity": a.severity, "metric": a.metric, "segment": a.segment, "status": a.status,
         "suppressed_by": a.suppressed_by, "deliveries": dict(a.deliveries or {})}
        for a in alerts.itertuples()
    ]
    trends = _clean(summary["metric_trends"])
    # each part JSON-safe once (the summary and the drift already are: no second pass over them)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "model": model,
        "period": _clean(summary["period"]),
        "summary": {k: v for k, v in summary.to_dict().items() if k not in ("metric_trends",)},
        "windows": _clean(_report_windows(daily)),
        "trends": trends,
        "change_points": _clean({m: t.get("change_point") for m, t in trends.items()}),
        "alerts": _clean(alert_list),
        "drift": _drift(store, config, model, all_recs),  # the summary's records (the same window)
    }


def _report_windows(daily: pd.DataFrame) -> list[dict[str, Any]]:
    """The report's ``windows``: one entry per day of ``daily`` (a :func:`metric_series` frame),
    in time order, with the day's rows, the metrics of its rows in row order."""
    if not len(daily):
        return []
    codes, days = pd.factorize(daily["timestamp"], sort=True)
    cols = [daily[c].tolist() for c in ("metric", "value", "ci_lower", "ci_upper", "n", "n_batches")]
    windows: list[dict[str, Any]] = [{} for _ in range(len(days))]
    for code, metric, value, lo, hi, n, n_batches in zip(codes.tolist(), *cols, strict=True):
        w = windows[code]
        if not w:
            w.update({"start": pd.Timestamp(days[code]).isoformat(), "n": int(n), "n_batches": int(n_batches),
                      "metrics": {}})
        w["metrics"][metric] = {"value": value, "ci_lower": lo, "ci_upper": hi}
    return windows


def trends_chart(store: Store, config: PerformanceConfig, *, days: float = 30, metric: str | None = None,
                 model: str, end: datetime | None = None, segment: Any = _ALL):
    """Altair chart(s) of the tracked metrics with interval, baseline, threshold, alerts and trend."""
    import altair as alt

    from perfkit.report.charts import metric_chart

    start, stop = _window(days, end)
    recs = window_records(store, model, segment, start, stop)
    segments = {r.segment for r in recs}
    series = metric_series(recs, freq="1D" if len(segments) > 1 and segment is _ALL else None,
                           level=config.confidence_level)
    baseline = store.get_baseline(model, segment=None if segment is _ALL else segment)
    base_report = evaluate(state_from_dict(baseline.state), level=config.confidence_level) if baseline is not None else None
    names = [metric] if metric else [m for m in config.metrics_to_track if m in set(series["metric"])]
    if not names:
        names = ["sample_count"]
    alerts = store.alerts(model, start=start, end=stop, include_suppressed=False)
    charts = []
    for m in names:
        s = series[series["metric"] == m][["timestamp", "value", "ci_lower", "ci_upper"]].dropna(subset=["value"])
        bv = base_report[m].value if base_report is not None and m in base_report else None
        a = alerts[(alerts["metric"] == m) & (alerts["alert_type"] == "performance_degradation")] if len(alerts) else alerts
        afr = None
        if len(a):
            vals = s.set_index("timestamp")["value"]
            afr = pd.DataFrame({"timestamp": pd.to_datetime(a["timestamp"], utc=True), "severity": a["severity"].to_numpy()})
            afr["value"] = [vals.asof(t) if len(vals) else math.nan for t in afr["timestamp"]]
        trend_frame = None
        cp = None
        if len(s) >= config.min_samples_for_trend:
            tr = analyze_trend(list(s["timestamp"]), s["value"].to_numpy(float), None,
                               higher_is_better=bool(get_metric(m).higher_is_better),
                               min_samples=config.min_samples_for_trend, metric=m)
            trend_frame, cp = tr.chart_overlay()
        charts.append(metric_chart(
            s, metric=m, baseline=bv if bv is not None and math.isfinite(bv) else None,
            threshold=_threshold_value(config, m, bv), higher_is_better=bool(get_metric(m).higher_is_better),
            alerts=afr, trend=trend_frame, change_point=cp, title=f"{m} — {model}",
        ))
    if len(charts) == 1:
        return charts[0]
    from perfkit.report.charts import apply_theme

    bare = []
    for c in charts:
        c = c.copy()
        c.config = alt.Undefined
        bare.append(c)
    return apply_theme(alt.vconcat(*bare))
