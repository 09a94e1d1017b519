"""Build one model's weekly review from the store (used by :func:`perfkit.report.weekly.weekly_context`).

Returns plain field dicts; :mod:`perfkit.report.weekly` wraps them in ``ModelReview``.
Reads go through the tracker's public store methods and :mod:`perfkit.summary`.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from perfkit.report._narrative import Findings, MetricChange, SegmentChange, narrate
from perfkit.store import ALL_SEGMENTS

__all__ = ["estimate_points", "estimate_tables", "model_review_fields"]

logger = logging.getLogger("perfkit")

_MAX_CHARTS = 3
_US = timedelta(microseconds=1)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _nan(x: Any) -> float:
    return float(x) if _finite(x) else math.nan


def _z(level: float) -> float:
    from perfkit.metrics.intervals import z_value

    return z_value(level)  # scipy.stats.norm.ppf's number, without importing scipy.stats


def _call(fn: Any, tracker: Any, **kw: Any) -> Any:
    """Call a :mod:`perfkit.summary` function (they take a store and a config)."""
    return fn(tracker.store, tracker.config, **kw)


def _hib(name: str) -> bool | None:
    from perfkit.metrics import get_metric

    return get_metric(name).higher_is_better


def headline(tracker: Any, summary: Any) -> pd.DataFrame:
    """One row per tracked metric: value, interval, baseline, change with interval, threshold, status.

    ``status`` is :func:`perfkit.analysis.metric_status` of the period's merged state against
    the baseline (the tracker's own decision): ``degraded`` / ``ok`` for metrics with a
    threshold, ``changed, no threshold`` when a metric without one changed credibly for the
    worse, ``no threshold``, ``no baseline`` or ``undefined``.
    """
    from perfkit.analysis import metric_status, threshold_value
    from perfkit.metrics import MetricValue

    settings = tracker.config.detection
    z = _z(float(tracker.config.confidence_level))
    base = (summary["baseline"] or {}).get("metrics", {})
    tracked = [m for m in tracker.config.metrics_to_track
               if (summary["window_metrics"].get(m) or {}).get("value") is not None]
    current = {m: MetricValue.from_dict({"name": m, **summary["window_metrics"][m]}) for m in tracked}
    baseline = {m: MetricValue.from_dict({"name": m, **base[m]}) for m in tracked
                if (base.get(m) or {}).get("value") is not None}
    decided = metric_status(current, baseline, settings, tracked).set_index("metric") if tracked else None
    rows = []
    for m in tracked:
        w = summary["window_metrics"][m]
        b = base.get(m, {})
        bv, bse = b.get("value"), b.get("se")
        v, se = w.get("value"), w.get("se")
        change = v - bv if _finite(bv) else math.nan
        lo = hi = math.nan
        if _finite(change) and _finite(se) and _finite(bse):
            half = z * math.hypot(se, bse)
            lo, hi = change - half, change + half
        rel = change / abs(bv) if _finite(change) and bv else math.nan
        thr = threshold_value(m, bv if _finite(bv) else None, settings)
        rows.append({"metric": m, "value": v, "ci_lower": _nan(w.get("ci_lower")), "ci_upper": _nan(w.get("ci_upper")),
                     "baseline": _nan(bv), "change": change, "change_ci_lower": lo, "change_ci_upper": hi,
                     "relative_change": rel, "threshold": _nan(thr), "status": decided.loc[m, "status"]})
    return pd.DataFrame(rows, columns=["metric", "value", "ci_lower", "ci_upper", "baseline", "change",
                                       "change_ci_lower", "change_ci_upper", "relative_change", "threshold",
                                       "status"])


def trends(summary: Any) -> pd.DataFrame:
    """The trend analysis table (one row per metric)."""
    rows = []
    for m, t in summary["metric_trends"].items():
        cp = t.get("change_point") or {}
        rows.append({
            "metric": m, "direction": t.get("direction"), "points": t.get("n_points"),
            "slope_per_day": _nan(t.get("slope_per_day")), "p_value": _nan(t.get("p_value")),
            "change_point": pd.Timestamp(cp["time"]) if cp.get("significant") and cp.get("time") else None,
            "shift": _nan(cp.get("shift")) if cp.get("significant") else math.nan,
            "time_to_breach_days": _nan(t.get("time_to_breach_days")),
            "breached": bool(t.get("already_breached")),
        })
    return pd.DataFrame(rows, columns=["metric", "direction", "points", "slope_per_day", "p_value",
                                       "change_point", "shift", "time_to_breach_days", "breached"])


def segments_frame(tracker: Any, model: str, summary: Any, metric: str | None,
                   baselines: dict[Any, Any]) -> pd.DataFrame:
    """Per segment: value with interval, the segment's baseline and the change with its interval."""
    cols = ["segment", "batches", "rows", "value", "ci_lower", "ci_upper", "baseline", "change",
            "change_ci_lower", "change_ci_upper", "relative_change"]
    if metric is None or not summary["segments"]:
        return pd.DataFrame(columns=cols)
    hib = _hib(metric)
    z = _z(float(tracker.config.confidence_level))
    rows = []
    for seg, d in summary["segments"].items():
        v = d["metrics"].get(metric, {})
        b = baselines.get(None if seg == "(all)" else seg)
        bm = (b.metrics or {}).get(metric, {}) if b is not None else {}
        bv, bse = bm.get("value"), bm.get("se")
        val, se = _nan(v.get("value")), v.get("se")
        change = val - bv if _finite(bv) and _finite(val) else math.nan
        lo = hi = math.nan
        if _finite(change) and _finite(se) and _finite(bse):
            half = z * math.hypot(se, bse)
            lo, hi = change - half, change + half
        rows.append({"segment": seg, "batches": d["records"], "rows": d["samples"], "value": val,
                     "ci_lower": _nan(v.get("ci_lower")), "ci_upper": _nan(v.get("ci_upper")),
                     "baseline": _nan(bv), "change": change, "change_ci_lower": lo, "change_ci_upper": hi,
                     "relative_change": change / abs(bv) if _finite(change) and bv else math.nan})
    frame = pd.DataFrame(rows, columns=cols)
    return frame.sort_values("value", ascending=hib is not False, kind="stable").reset_index(drop=True)


def shift_shares(tracker: Any, model: str, start: datetime, end: datetime, segments: list[Any],
                 baselines: dict[Any, Any], metrics: list[str]) -> dict[str, Any]:
    """Exact within/mix splits of the tracked metrics that have one (several segments with baselines)."""
    from perfkit.report._shiftshare import SUPPORTED_METRICS, shift_share

    names = [m for m in metrics if m in SUPPORTED_METRICS]
    if len(segments) < 2 or not names or any(baselines.get(s) is None for s in segments):
        return {}
    current = {}
    for s in segments:
        st = tracker.store.window_state(model, segment=s, start=start, end=end)
        if st is not None:
            current[s or "(none)"] = st
    base = {s or "(none)": baselines[s].state for s in segments}
    out = {}
    for m in names:
        try:
            out[m] = shift_share(base, current, m)
        except Exception as exc:  # noqa: BLE001 - a metric the states cannot give is left out, logged
            logger.debug("no shift-share for %s: %s", m, exc)
    return out


def _findings(tracker: Any, summary: Any, head: pd.DataFrame, trend_table: pd.DataFrame, seg_tables: dict,
              splits: dict, alerts: pd.DataFrame, days: float, trend_days: float) -> Findings:
    metrics = []
    thresholded = tracker.config.detection.thresholds
    for r in head.itertuples():
        metrics.append(MetricChange(r.metric, r.value, r.baseline, r.change_ci_lower, r.change_ci_upper,
                                    _hib(r.metric), r.threshold if _finite(r.threshold) else None))
    metrics.sort(key=lambda m: m.metric not in thresholded)
    cps = {r.metric: r.change_point.to_pydatetime() for r in trend_table.itertuples()
           if r.change_point is not None and not pd.isna(r.change_point)}
    segs = {}
    for m, table in seg_tables.items():
        contrib = {s.segment: s.contribution for s in splits[m].segments} if m in splits else {}
        segs[m] = tuple(SegmentChange(str(r.segment), r.value, r.baseline, r.change_ci_lower, r.change_ci_upper,
                                      _hib(m), contrib.get(r.segment, math.nan)) for r in table.itertuples())
    sent = alerts[alerts["status"] != "suppressed"] if len(alerts) else alerts
    return Findings(
        days=days, metrics=tuple(metrics), change_points=cps, trend_days=trend_days, segments=segs,
        within={m: s.within for m, s in splits.items()}, mix={m: s.mix for m, s in splits.items()},
        alerts_sent=int(len(sent)), alerts_suppressed=int(len(alerts) - len(sent)),
        retraining_triggers=int((sent["alert_type"] == "retraining_trigger").sum()) if len(sent) else 0,
        level=float(tracker.config.confidence_level), has_baseline=summary["baseline"] is not None,
    )


def _chart_metrics(tracker: Any, head: pd.DataFrame) -> list[str]:
    present = list(head["metric"])
    thresholded = [m for m in present if m in tracker.config.detection.thresholds]
    changed = [m for m in present if m not in thresholded and str(
        head.set_index("metric").loc[m, "status"]).startswith("changed")]
    return (thresholded + changed or present)[:_MAX_CHARTS + len(changed)]


def _trend_chart(tracker: Any, recs: list, alerts: pd.DataFrame, metric: str, baseline: float, freq: str | None,
                 title: str, pending: list | None = None, windows: list | None = None) -> Any:
    from perfkit.analysis import threshold_value
    from perfkit.analysis.trend import analyze_trend
    from perfkit.report._sections import trend_points
    from perfkit.report.charts import metric_chart

    pts = trend_points(recs, metric, alerts, freq=freq, level=tracker.config.confidence_level, windows=windows)
    hib = _hib(metric)
    trend_frame = cp = None
    if len(pts) >= tracker.config.min_samples_for_trend and hib is not None:
        tr = analyze_trend(list(pts["timestamp"]), pts["value"].to_numpy(float), pts["se"].to_numpy(float) ** 2,
                           higher_is_better=bool(hib), tolerance=tracker.config.trend_tolerance,
                           min_samples=tracker.config.min_samples_for_trend, metric=metric)
        trend_frame, cp = tr.chart_overlay()
    bv = baseline if _finite(baseline) else None
    level = f"{float(tracker.config.confidence_level) * 100:g} %"
    return metric_chart(
        pts.drop(columns=["se", "n_batches"]), metric=metric, baseline=bv,
        threshold=threshold_value(metric, bv, tracker.config.detection), higher_is_better=hib is not False, trend=trend_frame,
        change_point=cp, title=title, value_label="daily value (all segments)" if freq else "batch value",
        interval_label=f"{level} interval",
        estimates=estimate_points(tracker, pending or [], metric, freq),
        estimate_label="daily estimate, labels pending" if freq else "estimate, labels pending",
        estimate_interval_label=f"estimate {level} interval",
    )


# ------------------------------------------------------------------ before the labels arrive
_EST_COLUMNS = ["timestamp", "batch_id", "segment", "rows", "metric", "estimate", "ci_lower", "ci_upper",
                "baseline", "alert"]
_DRIFT_COLUMNS = ["timestamp", "batch_id", "segment", "metric", "estimated", "ci_lower", "ci_upper", "realized",
                  "z", "p_value", "suspected"]


def _est_values(r: Any) -> dict[str, Any]:
    from perfkit.metrics import MetricValue

    return {m: MetricValue.from_dict({"name": m, **v})
            for m, v in ((r.metadata or {}).get("estimated_metrics") or {}).items()}


def estimate_points(tracker: Any, pending: list, metric: str, freq: str | None) -> pd.DataFrame | None:
    """Chart points of the label-free estimate of ``metric`` for batches whose labels are
    pending: the tracker's stored estimate per batch, or per window (``freq``) the estimate
    of the window's merged prediction states against the model's baseline (the same
    function, exactly as windows of realized values merge). Completed batches are not
    drawn: their realized values replace the estimate (the concept-drift table compares
    the two)."""
    rows = []
    if freq is None:
        for r in pending:
            v = _est_values(r).get(metric)
            if v is not None and _finite(v.value):
                rows.append({"timestamp": r.timestamp, "value": v.value, "ci_lower": v.ci_lower,
                             "ci_upper": v.ci_upper, "n": int(r.sample_count),
                             "segment": r.segment if r.segment is not None else "all"})
    elif pending:
        from perfkit.exceptions import PerfkitError
        from perfkit.metrics import calibrate, estimate
        from perfkit.metrics.state import merge_dicts_to_state, state_from_dict

        b = tracker.store.get_baseline(pending[0].model, segment=None)
        try:
            cal = calibrate(state_from_dict(b.state)) if b is not None else None
        except PerfkitError as exc:
            logger.debug("no calibration for the estimate points: %s", exc)
            cal = None
        frame = pd.DataFrame({"ts": pd.to_datetime([r.timestamp for r in pending], utc=True),
                              "i": range(len(pending))})
        frame["bucket"] = frame["ts"].dt.floor(freq)
        for bucket, g in (frame.groupby("bucket") if cal is not None else ()):
            recs = [pending[i] for i in g["i"]]
            try:
                v = estimate(merge_dicts_to_state([r.state for r in recs]), cal,
                             level=float(tracker.config.confidence_level)).get(metric)
            except PerfkitError as exc:
                logger.debug("no estimate for the window %s: %s", bucket, exc)
                continue
            if v is not None and _finite(v.value):
                segs = sorted({r.segment or "all" for r in recs})
                rows.append({"timestamp": bucket, "value": v.value, "ci_lower": v.ci_lower, "ci_upper": v.ci_upper,
                             "n": int(sum(r.sample_count for r in recs)),
                             "segment": f"all ({', '.join(segs)})" if len(segs) > 1 else segs[0]})
    if not rows:
        return None
    out = pd.DataFrame(rows)
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    return out


def estimate_tables(tracker: Any, model: str, segment: Any, start: datetime, stop: datetime,
                    alerts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Before the labels arrive, for the weekly review: ``estimates`` (one row per pending
    batch and tracked metric: the label-free estimate, its interval, the baseline and
    whether an estimated alert was raised) and ``concept_drift`` (one row per completed
    batch that had an estimate and checked metric: :func:`perfkit.metrics.concept_drift_check`
    of realized against estimated, as the tracker ran it when the labels arrived)."""
    from perfkit.metrics import MetricValue, concept_drift_check

    kw = {} if segment is None else {"segment": segment}
    recs = [r for r in tracker.store.records(model, start=start, end=stop, include_pending=True, **kw)
            if (r.metadata or {}).get("estimated_metrics")]
    tracked = list(tracker.config.metrics_to_track)
    baselines: dict[Any, dict] = {}

    def base_value(seg: Any, m: str) -> float:  # the baseline the tracker compared with
        if seg not in baselines:
            b = tracker.store.get_baseline(model, segment=seg)
            if b is None and seg is not None:
                b = tracker.store.get_baseline(model, segment=None)
            baselines[seg] = (b.metrics or {}) if b is not None else {}
        return _nan((baselines[seg].get(m) or {}).get("value"))

    est_alerts = alerts[alerts["alert_type"] == "estimated_performance_degradation"] if len(alerts) else alerts
    fired = {(a.batch_id, a.segment, a.metric): a.severity + (" (suppressed)" if a.status == "suppressed" else "")
             for a in est_alerts.itertuples()} if len(est_alerts) else {}
    pending_rows, drift_rows = [], []
    for r in recs:
        est = _est_values(r)
        if r.labels_pending:
            for m in tracked:
                v = est.get(m)
                if v is None:
                    continue
                pending_rows.append({
                    "timestamp": pd.Timestamp(r.timestamp), "batch_id": r.batch_id, "segment": r.segment,
                    "rows": int(r.sample_count), "metric": m, "estimate": _nan(v.value),
                    "ci_lower": _nan(v.ci_lower), "ci_upper": _nan(v.ci_upper),
                    "baseline": base_value(r.segment, m),
                    "alert": fired.get((r.batch_id, r.segment, m), "none")})
            continue
        realized = {m: MetricValue.from_dict({"name": m, **v}) for m, v in (r.metrics or {}).items()}
        check = concept_drift_check(est, realized)
        for f in check.findings:
            e = est[f.metric]
            drift_rows.append({
                "timestamp": pd.Timestamp(r.timestamp), "batch_id": r.batch_id, "segment": r.segment,
                "metric": f.metric, "estimated": f.estimated, "ci_lower": _nan(e.ci_lower),
                "ci_upper": _nan(e.ci_upper), "realized": f.realized, "z": f.z, "p_value": f.p_value,
                "suspected": bool(f.suspected)})
    return {"estimates": pd.DataFrame(pending_rows, columns=_EST_COLUMNS),
            "concept_drift": pd.DataFrame(drift_rows, columns=_DRIFT_COLUMNS)}


def _explorer(tracker: Any, model: str, segment: Any, start: datetime, stop: datetime) -> Any:
    from perfkit.report._explorer import explorer_data, explorer_decision, explorer_payload
    from perfkit.report.charts import explorer_chart

    data = explorer_data(tracker, model, segment=segment, start=start, end=stop)
    if data is None or not len(data.points):
        return None
    settings = tracker.config.detection
    first = data.active[0] if data.active else data.metrics[0]
    rel = float(settings.thresholds.get(first, 0.05))  # relative, or absolute in absolute mode: as decide reads it
    max_t = max(0.3, round(rel * 2, 3))
    rel = min(rel, max_t)
    initial = explorer_decision(data, first, round(rel * 100, 6) / 100)
    model_base = {m: float(data.points.loc[data.points["metric"] == m, "baseline"].median()) for m in data.metrics}
    metrics = {m: {"baseline": model_base[m], "higher_is_better": bool(_hib(m))} for m in data.metrics}
    title = f"threshold explorer — {model}"
    if data.start is not None and data.start > start:
        title += f" (the last {len(data.points['key'].unique())} batches)"
    return explorer_chart(
        data.points, metrics=metrics, initial_metric=first, initial_threshold=rel, max_threshold=max_t,
        title=title, decision=explorer_payload(data), threshold_mode=settings.threshold_mode,
        initial_alerts={"fire": list(initial.loc[initial["status"] == "fires", "key"]),
                        "suppressed": list(initial.loc[initial["status"] == "suppressed", "key"])})


def model_review_fields(tracker: Any, model: str, segment: Any, as_of: datetime, days: float, trend_days: float,
                        charts: bool) -> dict[str, Any]:
    """The fields of ``ModelReview`` for one model (see :func:`perfkit.report.weekly.weekly_context`)."""
    from perfkit.summary import build_summary, drift_analysis

    seg_kw = ALL_SEGMENTS if segment is None else segment
    start, stop = as_of - timedelta(days=days), as_of + _US
    summary = _call(build_summary, tracker, days=days, model=model, segment=seg_kw, end=as_of)
    alerts = tracker.store.alerts(model, start=start, end=stop, **({} if segment is None else {"segment": segment}))
    notes: list[str] = []
    head = headline(tracker, summary)
    before_labels = estimate_tables(tracker, model, segment, start, stop, alerts)
    if summary["labelled_records"] == 0:
        if summary["pending_labels"]:
            notes.append(f"{summary['pending_labels']} batches are waiting for labels")
        return {"model": model, "segment": segment, "records": 0, "samples": 0, "task": None, "headline": head,
                "trends": pd.DataFrame(), "alerts": alerts, "segments": pd.DataFrame(), "notes": notes,
                **before_labels}
    if summary["baseline"] is None:
        if any(tracker.store.get_baseline(model, segment=s) is not None
               for s in summary["segments"] or () if s != "(all)"):
            notes.append("no whole-model baseline (batches are tracked by segment): the whole model's "
                         "change is not assessed; the segments table compares each segment with its own")
        else:
            notes.append("no baseline yet: changes and thresholds cannot be shown")
    trend_summary = _call(build_summary, tracker, days=trend_days, model=model, segment=seg_kw, end=as_of)
    trend_table = trends(trend_summary)
    chart_metrics = _chart_metrics(tracker, head)
    primary = chart_metrics[0] if chart_metrics else None
    seg_names = [None if s == "(all)" else s for s in summary["segments"]] if summary["segments"] else []
    baselines = {s: tracker.store.get_baseline(model, segment=s) for s in {*seg_names, None}}
    seg_tables = {m: segments_frame(tracker, model, summary, m, baselines) for m in head["metric"]}
    segments = seg_tables.get(primary, segments_frame(tracker, model, summary, None, baselines))
    splits = shift_shares(tracker, model, start, stop, seg_names, baselines, list(head["metric"])) \
        if segment is None else {}
    findings = _findings(tracker, summary, head, trend_table, seg_tables, splits, alerts, days, trend_days)
    drift = _call(drift_analysis, tracker, days=days, model=model, segment=seg_kw, end=as_of)
    from perfkit.report._sections import segment_drift

    out: dict[str, Any] = {
        "model": model, "segment": segment, "records": int(summary["labelled_records"]),
        "samples": int(sum(d.get("samples", 0) for d in summary["segments"].values())) if summary["segments"]
        else int(summary["total_samples"]),
        "task": summary["task"], "headline": head, "trends": trend_table, "alerts": alerts, "segments": segments,
        "primary_metric": primary, "notes": notes, "narrative": tuple(narrate(findings)), "shift_shares": splits,
        "drift": segment_drift(drift),
        "drift_note": {"no_baseline": "no baseline: prediction drift needs one",
                       "no_batches": "no batches in the period"}.get(drift.get("reason")),
        **before_labels,
    }
    if charts and chart_metrics:
        from perfkit.report.charts import segment_chart, volume_chart

        tstart = as_of - timedelta(days=trend_days)
        kw = {} if segment is None else {"segment": segment}
        recs = tracker.store.records(model, start=tstart, end=stop, include_pending=False, **kw)
        pending = [r for r in tracker.store.records(model, start=tstart, end=stop, include_pending=True, **kw)
                   if r.labels_pending]
        trend_alerts = tracker.store.alerts(model, start=tstart, end=stop, **kw)
        freq = "1D" if len({r.segment for r in recs}) > 1 else None
        h = head.set_index("metric")
        from perfkit.report._sections import merged_windows

        windows = merged_windows(recs, freq, tracker.config.confidence_level) if freq else None  # once, not per chart
        out["charts"] = [_trend_chart(tracker, recs, trend_alerts, m, h.loc[m, "baseline"], freq, f"{m} — {model}",
                                      pending, windows)
                         for m in chart_metrics]
        vol = pd.DataFrame({"timestamp": [r.timestamp for r in recs], "sample_count": [r.sample_count for r in recs]})
        if len(vol):
            vol["timestamp"] = pd.to_datetime(vol["timestamp"], utc=True).dt.floor("1D")
            vol = vol.groupby("timestamp", as_index=False)["sample_count"].sum()
            out["volume_chart"] = volume_chart(vol, title=f"rows per day — {model}")
        hib = _hib(primary)
        if len(segments) > 1:
            out["segment_chart"] = segment_chart(segments[["segment", "value", "ci_lower", "ci_upper"]].dropna(),
                                                 metric=primary, higher_is_better=hib is not False,
                                                 title=f"{primary} by segment, last {days:g} days (worst first)")
        explorer = _explorer(tracker, model, segment, tstart, stop)
        if explorer is not None:
            out["explorer_chart"] = explorer
        else:
            notes.append("no baseline: the threshold explorer is not shown")
    return out
