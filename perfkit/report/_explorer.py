"""Data of the offline threshold explorer: the decision inputs of every check, per point.

The explorer in the HTML report answers "which alerts would have fired with this threshold"
with the tracker's own rule: :func:`perfkit.analysis.decide` (tests, one false-discovery
family per tracking call, window check, severity) followed by the cooldown, exactly as
:func:`perfkit.analysis.replay` / :func:`perfkit.widgets.explore_thresholds` do it for each
segment against its own baseline. :func:`explorer_payload` ships the numbers that rule needs
(value, standard error, successes / trials, the baseline's, the family of each check, the
window rows) and the settings; the page evaluates the same formulas in JavaScript
(:data:`perfkit.report._explorer_js.EXPLORER_JS`) whenever the slider or the metric selector
moves. :func:`explorer_decision` is the Python side of the same question (it calls
``replay``), used for the chart's initial state and by the tests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_BATCHES", "ExplorerData", "explorer_data", "explorer_decision", "explorer_payload"]

#: Most batches the explorer checks (each ships ~2 kB of numbers per metric into the page).
MAX_BATCHES = 240
_AUTO_BASELINE = re.compile(r"^(?:first|history)_(\d+)_batches$")
_INPUT = ("family", "segment", "metric", "scope", "value", "se", "n", "successes", "trials", "baseline", "baseline_se",
          "baseline_successes", "baseline_trials")


@dataclass(frozen=True)
class ExplorerData:
    """Everything the explorer needs, for one model.

    Attributes
    ----------
    groups : tuple of (segment, history frame, baseline MetricReport)
        As :func:`perfkit.widgets.explore_thresholds` builds them; ``_checked`` marks the
        batches of the explorer's window.
    rows : DataFrame
        The decision inputs (:data:`perfkit.analysis.ROW_COLUMNS`) of every checked batch
        and window row of every monitored metric, with ``timestamp`` and ``key``
        (``batch_id|segment``: the point the row belongs to), in replay's order.
    points : DataFrame
        One point per checked batch and metric: ``timestamp``, ``metric``, ``segment``,
        ``value``, ``baseline``, ``key``.
    metrics : tuple of str
        Monitored metrics (with a direction and a baseline).
    active : tuple of str
        Metrics with a configured threshold (they form the tracker's test family).
    settings : DetectionSettings
    cooldown_hours : float
    """

    groups: tuple
    rows: pd.DataFrame
    points: pd.DataFrame
    metrics: tuple
    active: tuple
    settings: Any
    cooldown_hours: float
    start: datetime | None = None


def _key(batch_id: Any, segment: Any) -> str:
    return f"{batch_id}|{'' if segment is None else segment}"


def _history(tracker: Any, model: str, kw: dict, start: datetime | None, end: datetime | None,
             max_batches: int | None) -> tuple[list, datetime | None]:
    """The labelled records the explorer needs, and the first checked time.

    The checked batches (from ``start``, at most the latest ``max_batches``) and, before them,
    only what their checks read: the ``window_batches - 1`` partners of each segment's first
    window, and (auto baselines) enough to tell which batches the baseline was built from. A
    year of history is not read for a 240-batch explorer.
    """
    store = tracker.store
    if max_batches is None or start is None:
        records = store.records(model, end=end, include_pending=False, **kw)
        if max_batches is not None:
            times = sorted(pd.Timestamp(r.timestamp) for r in records)
            if len(times) > max_batches:
                start = times[-max_batches].to_pydatetime()
        return records, start
    recent = store.records(model, start=start, end=end, include_pending=False, **kw)
    if len(recent) > max_batches:
        start = sorted(pd.Timestamp(r.timestamp) for r in recent)[-max_batches].to_pydatetime()
    cutoff = pd.Timestamp(start)
    checked = [r for r in recent if pd.Timestamp(r.timestamp) >= cutoff]
    if not checked:
        return checked, start
    window = int(tracker.config.detection.window_batches or 1)
    need: dict[Any, int] = {}
    for seg in {r.segment for r in checked}:
        b = store.get_baseline(model, segment=seg)
        auto = _AUTO_BASELINE.match((b.source if b is not None else None) or "")
        need[seg] = max(window - 1, int(auto.group(1)) if auto and b.segment == seg else 0)
    span = max(pd.Timestamp(checked[-1].timestamp) - cutoff, pd.Timedelta(hours=1))
    while True:
        lo = (cutoff - span).to_pydatetime()
        older = store.records(model, start=lo, end=start, include_pending=False, **kw)
        have: dict[Any, int] = {}
        for r in older:
            have[r.segment] = have.get(r.segment, 0) + 1
        short = [seg for seg, n in need.items() if have.get(seg, 0) < n]
        # enough partners before the first checked batch, or the slice starts at the segment's first batch
        if all(store.count(model, segment=seg, end=lo, include_pending=False) == 0 for seg in short):
            return older + checked, start
        span *= 4


def explorer_data(tracker: Any, model: str, *, segment: Any = None, start: datetime | None = None,
                  end: datetime | None = None, metrics: Sequence[str] | None = None,
                  max_batches: int | None = MAX_BATCHES) -> ExplorerData | None:
    """Build the explorer's data from the store (None when no segment has a baseline).

    Batches from ``start`` to ``end`` are checked; earlier ones only serve as the partners of
    window checks (as in the tracker). ``segment=None`` means every segment, each against
    its own baseline. At most the latest ``max_batches`` batches are checked (the page
    carries every number of every check: this bounds the report's size); ``start`` is
    moved forward accordingly and returned in :attr:`ExplorerData.start`.
    """
    from perfkit.analysis import history_frame, replay_decisions
    from perfkit.metrics import evaluate, get_metric, state_from_dict

    cfg = tracker.config
    settings = cfg.detection
    kw = {} if segment is None else {"segment": segment}
    records, start = _history(tracker, model, kw, start, end, max_batches)
    wanted = list(metrics) if metrics is not None else list(cfg.metrics_to_track)
    wanted = [m for m in wanted if m != "performance_score" and get_metric(m).higher_is_better is not None]
    by_segment: dict[Any, list] = {}
    for r in records:
        by_segment.setdefault(r.segment, []).append(r)
    groups, parts = [], []
    every = settings.replace(thresholds={**{m: 0.05 for m in wanted}, **settings.thresholds})
    for seg, recs in by_segment.items():
        b = tracker.store.get_baseline(model, segment=seg)
        if b is None:
            continue
        base = evaluate(state_from_dict(b.state), level=cfg.confidence_level)
        skip: set = set()
        auto = _AUTO_BASELINE.match(b.source or "")
        if auto and b.segment == seg:  # the batches the baseline was built from are never checked
            skip = {r.batch_id for r in recs[: int(auto.group(1))]}
        frame = history_frame(recs)
        ts = pd.to_datetime(frame["timestamp"], utc=True)
        checked = ~frame["batch_id"].isin(skip).to_numpy()
        if start is not None:
            checked &= (ts >= pd.Timestamp(start)).to_numpy()
        frame["_checked"] = checked
        if not checked.any():
            continue
        names = [m for m in wanted if m in frame.columns and m in base]
        if not names:
            continue
        groups.append((seg, frame, base))
        decided = replay_decisions(frame, base, every, metrics=names)
        decided = decided[decided["scope"].isin(["batch", "window"])]
        parts.append(decided[[*_INPUT, "timestamp", "batch_id"]])
    if not parts:
        return None
    rows = pd.concat(parts, ignore_index=True)
    rows["key"] = [_key(b, s) for b, s in zip(rows["batch_id"], rows["segment"], strict=True)]
    present = [m for m in wanted if (rows["metric"] == m).any()]
    pts = rows[rows["scope"] == "batch"]
    pts = pts[np.isfinite(pd.to_numeric(pts["value"], errors="coerce").to_numpy(float))]
    points = pd.DataFrame({"timestamp": pd.to_datetime(pts["timestamp"], utc=True), "metric": pts["metric"],
                           "segment": [s if s is not None else "all" for s in pts["segment"]],
                           "value": pts["value"].astype(float), "baseline": pts["baseline"].astype(float),
                           "key": pts["key"]}).reset_index(drop=True)
    active = tuple(m for m in present if m in settings.thresholds)
    return ExplorerData(groups=tuple(groups), rows=rows.reset_index(drop=True), points=points,
                        metrics=tuple(present), active=active, settings=settings,
                        cooldown_hours=float(cfg.alert_cooldown_hours), start=start)


def explorer_decision(data: ExplorerData, metric: str, threshold: float) -> pd.DataFrame:
    """``replay`` over every segment with ``threshold`` (a fraction) for ``metric``.

    The family holds the configured thresholded metrics plus ``metric`` (as
    :func:`perfkit.widgets.explore_thresholds` with ``metrics=`` and ``thresholds=``).

    Returns
    -------
    DataFrame
        The ``performance_degradation`` alerts of ``metric`` (replay's columns), with
        ``key`` (the point they belong to) and ``status`` (``fires`` / ``suppressed``).
    """
    from perfkit.analysis import replay

    settings = data.settings.replace(thresholds={**data.settings.thresholds, metric: float(threshold)})
    names = list(dict.fromkeys([*data.active, metric]))
    frames = []
    for _, frame, base in data.groups:
        present = [m for m in names if m in frame.columns and m in base]
        if metric not in present:
            continue
        out = replay(frame, base, settings, metrics=present, cooldown_hours=data.cooldown_hours)
        frames.append(out[(out["metric"] == metric) & (out["alert_type"] == "performance_degradation")])
    if not frames:
        return pd.DataFrame(columns=["timestamp", "batch_id", "segment", "metric", "status", "key"])
    out = pd.concat(frames, ignore_index=True)
    out["key"] = [_key(b, s) for b, s in zip(out["batch_id"], out["segment"], strict=True)]
    return out


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def explorer_payload(data: ExplorerData) -> dict[str, Any]:
    """The JSON the page's decision script reads (columnar, full float precision)."""
    from perfkit.analysis import MIN_ROWS_BOOTSTRAP_Z
    from perfkit.metrics import get_metric

    rows = data.rows
    # replay runs each segment on its own, so a family is (segment, tracking call): history_frame's
    # "record:<i>" ids restart in every segment
    fam_codes, fam_uniques = pd.factorize(rows["segment"].map(lambda s: "" if s is None else str(s))
                                          + "\x1f" + rows["family"].astype(str))
    seg_codes, seg_uniques = pd.factorize(rows["segment"].map(lambda s: "" if s is None else str(s)))
    s = data.settings
    ms = pd.to_datetime(rows["timestamp"], utc=True)
    epoch_ms = (ms - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(milliseconds=1)
    return {
        "settings": {"alpha": s.alpha, "fdr_method": s.fdr_method, "gating": s.gating,
                     # the null of the minimum-effect test is this fraction of the threshold
                     "minimum_effect_fraction": float(getattr(s, "minimum_effect_fraction", 1.0)),
                     "threshold_mode": s.threshold_mode, "severity_bands": dict(s.severity_bands),
                     "thresholds": {k: float(v) for k, v in s.thresholds.items()},
                     "cooldown_ms": data.cooldown_hours * 3_600_000.0},
        "active": list(data.active),
        "min_rows_bootstrap_z": MIN_ROWS_BOOTSTRAP_Z,
        "metrics": {m: {"hib": 1 if get_metric(m).higher_is_better else -1, "test": get_metric(m).test}
                    for m in data.metrics},
        "families": [str(f) for f in fam_uniques],
        "segments": [str(x) for x in seg_uniques],
        "rows": {
            "family": fam_codes.tolist(), "segment": seg_codes.tolist(), "metric": rows["metric"].tolist(),
            "window": (rows["scope"] == "window").astype(int).tolist(),
            **{c: [_num(v) for v in rows[c]] for c in ("value", "se", "n", "successes", "trials", "baseline",
                                                        "baseline_se", "baseline_successes", "baseline_trials")},
            "time": [float(x) for x in epoch_ms], "key": rows["key"].tolist(),
        },
    }
