"""Tables and chart data of the weekly review, as pure functions of stored rows.

* :func:`trend_points`: one chart point per batch (or per merged daily window), with the
  columns the trend chart's tooltips and alert markers need (``n``, ``segment``, ``alert``,
  ``alert_severity``): alerts are attached to the point whose batch (or window) raised them.
* :func:`grouped_alerts`: the alerts of a period, one row per batch and segment, with the
  value, baseline and change of each metric, severity, delivery and a retraining flag.
* :func:`segment_drift`: prediction drift per segment from the per-batch drift rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SEVERITY_ORDER", "grouped_alerts", "merged_windows", "segment_drift", "trend_points"]

SEVERITY_ORDER = ("minor", "moderate", "critical")
_RANK = {s: i for i, s in enumerate(SEVERITY_ORDER)}
_POINT_COLUMNS = ["timestamp", "value", "ci_lower", "ci_upper", "se", "n", "n_batches", "segment", "alert",
                  "alert_severity"]


def _utc(ts: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def _worst(severities: Sequence[str]) -> str | None:
    known = [s for s in severities if s in _RANK]
    return max(known, key=_RANK.__getitem__) if known else None


def _alert_text(rows: pd.DataFrame) -> tuple[str, str | None]:
    """Tooltip text and marker severity of the alerts of one point."""
    if not len(rows):
        return "none", None
    sent = rows[rows["status"] != "suppressed"]
    parts = []
    if len(sent):
        deg = sent[sent["alert_type"] != "retraining_trigger"]
        items = [f"{s or 'all'} {sev}" for s, sev in zip(deg["segment"], deg["severity"], strict=True)]
        parts.append(f"{len(deg)} sent" + (f" ({', '.join(items)})" if items else ""))
        if (sent["alert_type"] == "retraining_trigger").any():
            parts.append("retraining triggered")
    n_supp = int((rows["status"] == "suppressed").sum())
    if n_supp:
        parts.append(f"{n_supp} suppressed by the cooldown")
    return "; ".join(parts), _worst(list(sent["severity"]))


def merged_windows(records: Sequence[Any], freq: str, level: float = 0.95) -> list[tuple[Any, list, Any, int]]:
    """``(bucket, records, MetricReport, n)`` of every ``freq`` window: each window's states merged
    and evaluated once (the trend charts of several metrics share them; pass as ``windows=``)."""
    from perfkit.metrics import evaluate
    from perfkit.metrics.state import merge_dicts_to_state

    out = []
    frame = pd.DataFrame({"ts": [_utc(r.timestamp) for r in records], "i": range(len(records))})
    if len(frame):
        frame["bucket"] = frame["ts"].dt.floor(freq)
        for bucket, g in frame.groupby("bucket"):
            recs = [records[i] for i in g["i"]]
            st = merge_dicts_to_state([r.state for r in recs])
            out.append((bucket, recs, evaluate(st, level=level), int(st.n)))
    return out


def trend_points(records: Sequence[Any], metric: str, alerts: pd.DataFrame | None = None, *,
                 freq: str | None = None, level: float = 0.95,
                 windows: Sequence[tuple[Any, list, Any, int]] | None = None) -> pd.DataFrame:
    """Chart points of ``metric``: per batch (``freq=None``) or per merged window (``"1D"``).

    Parameters
    ----------
    records : sequence of BatchRecord
        Labelled records, by time.
    metric : str
    alerts : DataFrame, optional
        The store's alerts (:meth:`perfkit.store.Store.alerts`); those of ``metric`` are
        attached to the point of their batch (per batch: same ``batch_id`` and segment; per
        window: the window holding the alert's time). Markers get the worst severity of the
        alerts that were sent; suppressed ones are only named in the tooltip.
    freq : str, optional
        Window length for merged points (``"1D"``).
    level : float, default 0.95
    windows : list, optional
        :func:`merged_windows` of ``records`` (same ``freq`` and ``level``), when already built.

    Returns
    -------
    DataFrame
        Columns ``timestamp``, ``value``, ``ci_lower``, ``ci_upper``, ``se``, ``n``,
        ``n_batches``, ``segment``, ``alert``, ``alert_severity``; rows without a value
        are dropped.
    """
    rows: list[dict[str, Any]] = []
    if freq is None:
        for r in records:
            v = (r.metrics or {}).get(metric) or {}
            rows.append({"timestamp": _utc(r.timestamp), "value": v.get("value"), "ci_lower": v.get("ci_lower"),
                         "ci_upper": v.get("ci_upper"), "se": v.get("se"), "n": int(r.sample_count),
                         "n_batches": 1, "segment": r.segment if r.segment is not None else "all",
                         "_key": (r.batch_id, r.segment)})
    else:
        for bucket, recs, rep, n in (windows if windows is not None else merged_windows(records, freq, level)):
            mv = rep[metric] if metric in rep else None
            segs = sorted({r.segment or "all" for r in recs})
            rows.append({"timestamp": _utc(bucket), "value": getattr(mv, "value", None),
                         "ci_lower": getattr(mv, "ci_lower", None), "ci_upper": getattr(mv, "ci_upper", None),
                         "se": getattr(mv, "se", None), "n": n, "n_batches": len(recs),
                         "segment": f"all ({', '.join(segs)})" if len(segs) > 1 else segs[0],
                         "_key": _utc(bucket)})
    out = pd.DataFrame(rows, columns=[*_POINT_COLUMNS[:8], "_key"])
    for c in ("value", "ci_lower", "ci_upper", "se"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out = out[np.isfinite(out["value"].to_numpy(float))].reset_index(drop=True)
    texts, sevs = ["none"] * len(out), [None] * len(out)
    if alerts is not None and len(alerts) and len(out):
        mine = alerts[alerts["metric"] == metric].copy()
        if len(mine):
            if freq is None:
                mine["_key"] = list(zip(mine["batch_id"], mine["segment"], strict=True))
            else:
                mine["_key"] = pd.to_datetime(mine["timestamp"], utc=True).dt.floor(freq)
            index = {k: i for i, k in enumerate(out["_key"])}
            for key, g in mine.groupby("_key", sort=False):
                i = index.get(key)
                if i is not None:
                    texts[i], sevs[i] = _alert_text(g)
    out["alert"] = texts
    out["alert_severity"] = sevs
    return out[_POINT_COLUMNS]


def _payload_number(payload: Any, key: str) -> float:
    v = (payload or {}).get(key) if isinstance(payload, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else math.nan


def _or_none(value: Any) -> Any:
    """None for missing values (None, NaN, NaT), else the value."""
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # list-like values are never missing
        return value


def grouped_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The alerts of a period grouped by batch and segment, newest first.

    A retraining trigger is a flag on its batch's row (``retraining``), not a row of its own.
    Multi-metric cells hold one line per metric, in the same order in every column.

    Returns
    -------
    DataFrame
        Columns ``time`` (UTC, text), ``batch``, ``segment``, ``metrics``, ``value``, ``baseline``,
        ``change``, ``severity``, ``delivery``, ``retraining``; plus ``_severity`` (the worst,
        for highlighting) and ``_sent`` (alerts sent on that row).

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({
    ...     "timestamp": pd.to_datetime(["2026-01-01T06:00Z"] * 3), "batch_id": ["b1"] * 3,
    ...     "segment": ["us"] * 3, "metric": ["accuracy", "f1_macro", "accuracy"],
    ...     "alert_type": ["performance_degradation"] * 2 + ["retraining_trigger"],
    ...     "severity": ["moderate", "minor", "moderate"], "status": ["delivered", "suppressed", "delivered"],
    ...     "deliveries": [{"file": "delivered"}, {}, {"file": "delivered"}],
    ...     "payload": [{"current": 0.7, "baseline": 0.87, "relative_change": -0.195},
    ...                 {"current": 0.7, "baseline": 0.85, "relative_change": -0.18},
    ...                 {"current": 0.7, "baseline": 0.87, "relative_change": -0.195}]})
    >>> row = grouped_alerts(a).iloc[0]
    >>> row["metrics"], row["retraining"]
    ('accuracy\\nf1_macro', 'yes (accuracy)')
    >>> row["delivery"]
    'sent: file delivered\\nsuppressed (cooldown)'
    """
    cols = ["time", "batch", "segment", "metrics", "value", "baseline", "change", "severity", "delivery",
            "retraining", "_severity", "_sent"]
    if alerts is None or not len(alerts):
        return pd.DataFrame(columns=cols)
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for a in alerts.to_dict("records"):  # plain records: per-group pandas filtering cost ~1 s a year
        a["_batch"], a["_seg"] = _or_none(a["batch_id"]), _or_none(a["segment"])
        key = ("–" if a["_batch"] is None else a["_batch"], "all" if a["_seg"] is None else a["_seg"])
        groups.setdefault(key, []).append(a)
    rows = []
    for g in groups.values():
        deg = [a for a in g if a["alert_type"] != "retraining_trigger"]
        retrain = [a for a in g if a["alert_type"] == "retraining_trigger"]
        lines = deg if deg else g
        metrics, values, bases, changes, sevs, deliveries = [], [], [], [], [], []
        for a in lines:
            metrics.append(str(a["metric"] or a["alert_type"]))
            cur, base = _payload_number(a["payload"], "current"), _payload_number(a["payload"], "baseline")
            rel = _payload_number(a["payload"], "relative_change")
            values.append(f"{cur:.4f}" if math.isfinite(cur) else "–")
            bases.append(f"{base:.4f}" if math.isfinite(base) else "–")
            diff = f"{cur - base:+.4f}" if math.isfinite(cur) and math.isfinite(base) else "–"
            changes.append(f"{diff} ({rel:+.1%})" if math.isfinite(rel) else diff)
            sevs.append(str(a["severity"]))
            if a["status"] == "suppressed":
                deliveries.append("suppressed (cooldown)")
            else:
                d = ", ".join(f"{k} {v}" for k, v in sorted((a["deliveries"] or {}).items()))
                deliveries.append(f"{'sent' if a['status'] != 'failed' else 'failed'}: {d or a['status']}")
        flag = ""
        if retrain:
            sent = [a for a in retrain if a["status"] != "suppressed"]
            names = ", ".join(dict.fromkeys(str(a["metric"]) for a in retrain if a["metric"]))
            flag = (f"yes ({names})" if sent else f"suppressed ({names})") if names else "yes"
        rows.append({
            "time": pd.Timestamp(max(a["timestamp"] for a in g)).tz_convert("UTC").strftime("%Y-%m-%d %H:%M"),
            "batch": g[0]["_batch"] or "–",
            "segment": g[0]["_seg"] or "all", "metrics": "\n".join(metrics), "value": "\n".join(values),
            "baseline": "\n".join(bases), "change": "\n".join(changes), "severity": "\n".join(sevs),
            "delivery": "\n".join(deliveries), "retraining": flag or "–",
            "_severity": _worst([a["severity"] for a in g]), "_sent": sum(a["status"] != "suppressed" for a in g),
        })
    return pd.DataFrame(rows, columns=cols).sort_values("time", ascending=False, kind="stable").reset_index(drop=True)


def segment_drift(drift: dict[str, Any]) -> pd.DataFrame:
    """Prediction drift per segment from :func:`perfkit.summary.drift_analysis` output.

    Returns
    -------
    DataFrame
        One row per segment, most drifted first: ``segment``, ``batches``,
        ``drifted_batches`` (test at 5 %), ``median_psi``, ``max_psi``, ``latest_psi``,
        ``latest_label`` (PSI band of the latest batch).
    """
    cols = ["segment", "batches", "drifted_batches", "median_psi", "max_psi", "latest_psi", "latest_label"]
    frame = pd.DataFrame((drift or {}).get("batches") or [])
    if not len(frame) or "psi" not in frame:
        return pd.DataFrame(columns=cols)
    frame["segment"] = frame["segment"].fillna("all") if "segment" in frame else "all"
    frame["psi"] = pd.to_numeric(frame["psi"], errors="coerce")
    rows = []
    for seg, g in frame.groupby("segment", sort=True):
        g = g.sort_values("timestamp", kind="stable")
        rows.append({"segment": seg, "batches": len(g),
                     "drifted_batches": int(g["drifted"].fillna(False).astype(bool).sum()) if "drifted" in g else 0,
                     "median_psi": float(g["psi"].median()), "max_psi": float(g["psi"].max()),
                     "latest_psi": float(g["psi"].iloc[-1]),
                     "latest_label": str(g["psi_label"].iloc[-1]) if "psi_label" in g and
                     isinstance(g["psi_label"].iloc[-1], str) else "–"})
    return pd.DataFrame(rows, columns=cols).sort_values("median_psi", ascending=False, kind="stable").reset_index(
        drop=True)
