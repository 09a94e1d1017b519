"""Interactive threshold explorer: which alerts would the stored history have raised?

The stored batches of a model are loaded **once** and turned into one history frame; every
change of a threshold, severity band, cooldown, significance level or gating rule replays
that frame through :func:`perfkit.analysis.degradation.replay`, the same vectorized tests,
false-discovery control, severity bands and cooldown rule the tracker applies batch by
batch. So the table the explorer shows is exactly the set of alerts a tracker configured
with those settings would have raised (and suppressed) over the same batches.

Two entry points:

* :func:`explore_thresholds` -- a plain function returning the alert table for given
  settings (no widgets; scripts, tests, CI).
* :class:`ThresholdExplorer` -- the ipywidgets front end (sliders, chart, table, "Save"),
  for live JupyterLab. All derived state (``settings``, ``alerts``, ``counts``, ``chart``)
  lives on the object, so it is usable and testable without a browser.

Batches that make up an automatic baseline (``first_N_batches`` / ``history_N_batches``)
are not replayed: the tracker never checks them against themselves either.

Batches tracked before their labels arrived (pending still, or completed since) are replayed
from their stored label-free estimates too: ``estimated_performance_degradation`` alerts,
with their own cooldown key, through the same decision (see
:func:`perfkit.analysis.degradation.replay`).

Examples
--------
>>> import tempfile, os
>>> url = os.path.join(tempfile.mkdtemp(), "demo.db")
>>> tracker = example_history(url, n_batches=30, degrade_at=20, batch_size=400)
>>> alerts = explore_thresholds(tracker, metrics=["accuracy"], thresholds={"accuracy": 0.05},
...                             cooldown_hours=0)
>>> sorted(set(alerts["metric"]))
['accuracy']
>>> alerts["timestamp"].min() >= tracker.get_history()["timestamp"].iloc[20]
True
>>> tracker.close()
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfkit._checks import check_days
from perfkit.analysis import history_frame, replay
from perfkit.analysis.degradation import estimated_frame
from perfkit.config import DetectionSettings, PerformanceConfig, load_config, save_config
from perfkit.exceptions import InputTypeError, ValidationError
from perfkit.metrics import MetricReport, evaluate, get_metric, state_from_dict
from perfkit.store import ALL_SEGMENTS, BatchRecord, Store, open_store

__all__ = [
    "GATING_OPTIONS",
    "MAX_CHART_POINTS",
    "ThresholdExplorer",
    "alert_counts",
    "example_history",
    "explore_thresholds",
]

logger = logging.getLogger("perfkit")

#: The statistical gating rules of :class:`perfkit.config.DetectionSettings`.
GATING_OPTIONS: tuple[str, ...] = ("minimum_effect", "significance", "none")
_SEVERITIES = ("minor", "moderate", "critical")
_SEVERITY_COLORS = {"minor": "#f2c744", "moderate": "#f28e2b", "critical": "#d62728"}
_AUTO_BASELINE = re.compile(r"^(?:first|history)_(\d+)_batches$")
#: Above this many points the chart is downsampled (the table and counts never are).
MAX_CHART_POINTS = 2000


# ------------------------------------------------------------------------------------------
# loading (once)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    """One replay unit: the batches of one segment and the baseline they are compared with."""

    segment: str | None
    frame: pd.DataFrame
    baseline: MetricReport
    estimates: pd.DataFrame | None = None  # label-free estimates of batches tracked before their labels


@dataclass(frozen=True)
class _History:
    model: str
    config: PerformanceConfig
    groups: tuple[_Group, ...]
    metrics: tuple[str, ...]
    n_batches: int


def _store_url(value: str | os.PathLike[str]) -> str | Path:
    """A SQLAlchemy URL stays as is; a plain path means a SQLite file."""
    text = os.fspath(value)
    return text if "://" in text else Path(text)


def _resolve_config(config: Any, default: PerformanceConfig | None) -> PerformanceConfig:
    if config is None:
        return default if default is not None else load_config()
    if isinstance(config, PerformanceConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise InputTypeError(
        f"config must be a PerformanceConfig or a YAML path, got {type(config).__name__}",
        parameter="config",
    )


def _as_report(baseline: Any) -> MetricReport:
    if isinstance(baseline, MetricReport):
        return baseline
    if isinstance(baseline, Mapping):
        from perfkit.metrics import MetricValue

        bad = next((k for k, v in baseline.items() if not isinstance(v, (MetricValue, Mapping))), None)
        if bad is not None:  # {"accuracy": 0.9} used to raise a raw "'float' object is not a mapping"
            raise InputTypeError(
                f"baseline[{bad!r}] must be a MetricValue or its dict (tracker.get_baseline() gives them), "
                f"got {type(baseline[bad]).__name__}", parameter="baseline")
        values = {k: v if isinstance(v, MetricValue) else MetricValue.from_dict({"name": k, **v})
                  for k, v in baseline.items()}
        return MetricReport(task="unknown", level=0.95, n=0, values=values)
    raise InputTypeError(
        f"baseline must be a MetricReport (e.g. tracker.get_baseline()), got {type(baseline).__name__}",
        parameter="baseline",
    )


def _window(records: list[BatchRecord], days: float | None) -> list[BatchRecord]:
    if days is None or not records:
        return records
    start = max(r.timestamp for r in records) - timedelta(days=check_days(days))
    return [r for r in records if r.timestamp > start]


def _load(
    source: Any,
    *,
    model: str | None,
    segment: Any,
    days: float | None,
    config: Any,
    metrics: Sequence[str] | None,
    baseline: Any,
) -> _History:
    """Read records and baselines once and build the per-segment history frames."""
    from perfkit.tracker import ModelPerformanceTracker

    store: Store | None = None
    default_cfg: PerformanceConfig | None = None
    if isinstance(source, ModelPerformanceTracker):
        store, default_cfg = source.store, source.config
        model = model or source.model
    elif isinstance(source, Store):
        store = source
    elif isinstance(source, (str, os.PathLike)):
        store = open_store(_store_url(source), create=False)
    elif isinstance(source, Sequence) and all(isinstance(r, BatchRecord) for r in source):
        if baseline is None:
            raise ValidationError("a list of BatchRecords needs baseline= (a MetricReport)",
                                  parameter="baseline")
    else:
        raise InputTypeError(
            "source must be a ModelPerformanceTracker, a perfkit Store, a store URL or a list "
            f"of BatchRecords, got {type(source).__name__}", parameter="source")
    cfg = _resolve_config(config, default_cfg)

    if store is not None:
        if model is None:
            models = store.models()
            if len(models) != 1:
                raise ValidationError(f"the store holds models {models}; pass model=", parameter="model")
            model = models[0]
        everything = store.records(model, segment=segment, include_pending=True)
    else:
        everything = sorted((r for r in source if segment is ALL_SEGMENTS or r.segment == segment),
                            key=lambda r: r.timestamp)
    records = [r for r in everything if not r.labels_pending]
    if store is None:
        model = model or (records[0].model if records else cfg.model_name)
    if not records:
        raise ValidationError(f"no labelled batches of model {model!r} to explore", parameter="source")

    by_segment: dict[str | None, list[BatchRecord]] = {}
    for r in records:
        by_segment.setdefault(r.segment, []).append(r)
    estimated: dict[str | None, list[BatchRecord]] = {}
    for r in everything:
        if (r.metadata or {}).get("estimated_metrics"):
            estimated.setdefault(r.segment, []).append(r)
    groups = []
    for seg, recs in by_segment.items():
        if baseline is not None:
            base, skip = _as_report(baseline), set()
        else:
            b = store.get_baseline(model, segment=seg) if store is not None else None
            if b is None:
                raise ValidationError(
                    f"no baseline stored for model {model!r} (segment {seg!r}); set one with "
                    "tracker.set_baseline(...) or pass baseline=", parameter="source")
            base = evaluate(state_from_dict(b.state), level=cfg.confidence_level)
            skip = set()
            m = _AUTO_BASELINE.match(b.source or "")
            if m and b.segment == seg:  # the batches the baseline was built from
                skip = {r.batch_id for r in recs[: int(m.group(1))]}
        kept = _window([r for r in recs if r.batch_id not in skip], days)
        if kept:
            # every batch stays in the frame (earlier ones are the partners of windowed checks);
            # only the checked ones can raise alerts, as in the tracker
            ids = {r.batch_id for r in kept}
            frame = history_frame(recs)
            frame["_checked"] = frame["batch_id"].isin(ids).to_numpy()
            est = _window([r for r in estimated.get(seg, []) if r.batch_id not in skip], days)
            groups.append(_Group(seg, frame, base, estimated_frame(est) if est else None))
    if not groups:
        raise ValidationError(f"no batches of model {model!r} left to check after the baseline",
                              parameter="days")
    if metrics is None:
        wanted = [m for m in cfg.metrics_to_track if m in cfg.detection.thresholds]
    elif isinstance(metrics, str):  # used to be read as its letters
        raise InputTypeError(f"metrics must be a list of metric names, got the str {metrics!r}", parameter="metrics")
    else:
        wanted = [str(m) for m in metrics]
    present = [m for m in wanted if any(m in g.frame.columns and m in g.baseline for g in groups)]
    if not present:
        raise ValidationError(
            f"none of the metrics {wanted} has a threshold and values in the history",
            parameter="metrics")
    return _History(model=model, config=cfg, groups=tuple(groups), metrics=tuple(present),
                    n_batches=sum(int(g.frame["_checked"].sum()) for g in groups))


# ------------------------------------------------------------------------------------------
# the pure core
# ------------------------------------------------------------------------------------------
def _check_fraction(value: Any, parameter: str, *, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValidationError(f"{parameter} must be a number, got {value!r}", parameter=parameter)
    v = float(value)
    if not (math.isfinite(v) and 0 < v <= hi):
        raise ValidationError(f"{parameter} must be in (0, {hi:g}], got {value!r}", parameter=parameter)
    return v


def _settings(
    base: DetectionSettings,
    *,
    thresholds: Mapping[str, float] | None = None,
    severity_bands: Mapping[str, float] | None = None,
    alpha: float | None = None,
    gating: str | None = None,
) -> DetectionSettings:
    """``base`` with the explorer's choices applied and validated."""
    from perfkit.metrics import resolve_metric_name

    changes: dict[str, Any] = {}
    if thresholds is not None:
        if not isinstance(thresholds, Mapping):
            raise InputTypeError("thresholds must be a dict {metric: threshold}", parameter="thresholds")
        merged = dict(base.thresholds)
        for name, t in thresholds.items():
            merged[resolve_metric_name(name)] = _check_fraction(t, f"thresholds[{name!r}]")
        changes["thresholds"] = merged
    if severity_bands is not None:
        bands = dict(base.severity_bands)
        for k, v in dict(severity_bands).items():
            if k not in ("moderate", "critical"):
                raise ValidationError(f"severity_bands keys are 'moderate' and 'critical', got {k!r}",
                                      parameter="severity_bands")
            bands[k] = _check_fraction(v, f"severity_bands[{k!r}]")
        if bands["critical"] <= bands["moderate"]:
            raise ValidationError(
                f"severity_bands: critical ({bands['critical']:g}) must exceed moderate "
                f"({bands['moderate']:g})", parameter="severity_bands")
        changes["severity_bands"] = bands
    if alpha is not None:
        changes["alpha"] = _check_fraction(alpha, "alpha", hi=0.5)
    if gating is not None:
        if gating not in GATING_OPTIONS:
            raise ValidationError(f"gating must be one of {list(GATING_OPTIONS)}, got {gating!r}",
                                  parameter="gating")
        changes["gating"] = gating
    return base.replace(**changes) if changes else base


def _check_cooldown(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValidationError(f"cooldown_hours must be a number >= 0, got {value!r}",
                              parameter="cooldown_hours")
    return float(value)


def _replay(history: _History, settings: DetectionSettings, cooldown_hours: float) -> pd.DataFrame:
    """Replay every segment group (one tracker FDR family per batch, cooldown per segment)."""
    frames = [replay(g.frame, g.baseline, settings, metrics=list(history.metrics),
                     cooldown_hours=cooldown_hours, model=history.model, estimates=g.estimates)
              for g in history.groups]
    if len(frames) == 1:
        return frames[0]
    frames = [f for f in frames if not f.empty] or frames[:1]
    return pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable") \
        .reset_index(drop=True)


def alert_counts(alerts: pd.DataFrame) -> dict[str, int]:
    """Firing alerts per severity, all firing alerts and the suppressed ones.

    Examples
    --------
    >>> frame = pd.DataFrame({"severity": ["minor", "critical", "minor"],
    ...                       "status": ["fires", "fires", "suppressed"]})
    >>> alert_counts(frame)
    {'minor': 1, 'moderate': 0, 'critical': 1, 'fires': 2, 'suppressed': 1}
    """
    fires = alerts["status"] == "fires" if len(alerts) else pd.Series([], dtype=bool)
    out = {s: int(((alerts["severity"] == s) & fires).sum()) if len(alerts) else 0 for s in _SEVERITIES}
    out["fires"] = int(fires.sum())
    out["suppressed"] = int((~fires).sum())
    return out


def explore_thresholds(
    source: Any,
    *,
    model: str | None = None,
    segment: Any = ALL_SEGMENTS,
    days: float | None = None,
    config: PerformanceConfig | str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | None = None,
    baseline: MetricReport | None = None,
    thresholds: Mapping[str, float] | None = None,
    severity_bands: Mapping[str, float] | None = None,
    cooldown_hours: float | None = None,
    alpha: float | None = None,
    gating: str | None = None,
) -> pd.DataFrame:
    """The alerts a tracker with these settings would have raised over the stored history.

    Parameters
    ----------
    source : ModelPerformanceTracker, Store, str or list of BatchRecord
        Where the history is: a tracker (its store, model and config), a store or store
        URL, or records (then ``baseline`` is required).
    model : str, optional
        Default: the tracker's model, or the only model in the store.
    segment : str, None or ALL_SEGMENTS
        Default every segment (each compared with its own baseline, as the tracker does).
    days : float, optional
        Only the last ``days`` days of history, counted back from the newest batch.
    config : PerformanceConfig or path, optional
        Starting settings (default: the tracker's config, else :func:`load_config`).
    metrics : sequence of str, optional
        Metrics to check (default: the config's ``metrics_to_track`` with a threshold).
    baseline : MetricReport, optional
        Overrides the stored baseline.
    thresholds : dict, optional
        ``{metric: threshold}`` overriding the config's (relative unless the config's
        ``threshold_mode`` is absolute).
    severity_bands : dict, optional
        ``{"moderate": x, "critical": y}`` lower band edges.
    cooldown_hours : float, optional
        Default: the config's ``alert_cooldown_hours``.
    alpha : float, optional
        Significance level after false-discovery control.
    gating : {"minimum_effect", "significance", "none"}, optional

    Returns
    -------
    DataFrame
        :func:`perfkit.analysis.degradation.replay` output: one row per alert with
        ``status`` ``"fires"`` or ``"suppressed"``.

    Raises
    ------
    ValidationError
        Bad settings (the message names the parameter), or no history / baseline.

    Examples
    --------
    >>> import tempfile, os
    >>> tracker = example_history(os.path.join(tempfile.mkdtemp(), "h.db"), n_batches=30,
    ...                           degrade_at=20, batch_size=400)
    >>> strict = explore_thresholds(tracker, thresholds={"accuracy": 0.02}, gating="none")
    >>> lax = explore_thresholds(tracker, thresholds={"accuracy": 0.30}, gating="none")
    >>> len(strict) >= len(lax)
    True
    >>> explore_thresholds(tracker, alpha=2)
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ValidationError: alpha must be in (0, 0.5], got 2
    >>> tracker.close()
    """
    history = _load(source, model=model, segment=segment, days=days, config=config,
                    metrics=metrics, baseline=baseline)
    settings = _settings(history.config.detection, thresholds=thresholds,
                         severity_bands=severity_bands, alpha=alpha, gating=gating)
    cooldown = _check_cooldown(history.config.alert_cooldown_hours if cooldown_hours is None
                               else cooldown_hours)
    return _replay(history, settings, cooldown)


# ------------------------------------------------------------------------------------------
# chart and table
# ------------------------------------------------------------------------------------------
def _downsample(frame: pd.DataFrame, column: str, max_points: int) -> pd.DataFrame:
    """Keep the min and max of ``column`` in each of ``max_points // 2`` time buckets."""
    n = len(frame)
    if n <= max_points:
        return frame
    buckets = pd.Series(np.arange(n) * (max_points // 2) // n)
    values = pd.Series(frame[column].to_numpy(float))
    grouped = values.groupby(buckets.to_numpy())
    keep = np.union1d(grouped.idxmin().dropna().to_numpy(int), grouped.idxmax().dropna().to_numpy(int))
    return frame.iloc[keep]


def _threshold_level(metric: str, baseline: float, threshold: float, mode: str) -> float | None:
    hib = get_metric(metric).higher_is_better
    if not math.isfinite(baseline) or hib is None:
        return None
    delta = threshold * abs(baseline) if mode == "relative" else threshold
    return baseline - delta if hib else baseline + delta


def _line_data(history: _History, metric: str, max_points: int) -> pd.DataFrame:
    """The plotted series of ``metric`` (downsampled; independent of the settings)."""
    parts = []
    for g in history.groups:
        if metric in g.frame.columns:
            part = g.frame.loc[g.frame["_checked"], ["timestamp", metric]].rename(columns={metric: "value"})
            part = part[np.isfinite(part["value"].to_numpy(float))]
            part["segment"] = "all" if g.segment is None else str(g.segment)
            parts.append(_downsample(part, "value", max(max_points // len(history.groups), 10)))
    if not parts:
        return pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"), "value": [],
                             "segment": []})
    return pd.concat(parts, ignore_index=True)


def _records_for_spec(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_dict(orient="records")


def _chart_spec(
    history: _History,
    alerts: pd.DataFrame,
    metric: str,
    settings: DetectionSettings,
    *,
    max_points: int = MAX_CHART_POINTS,
    line: pd.DataFrame | None = None,
    line_values: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Vega-Lite spec of ``metric`` with the alerts coloured by the severity they would get.

    Firing alerts are filled diamonds in the severity colours; suppressed ones are hollow
    grey diamonds. Above ``max_points`` batches the line keeps the minimum and maximum of
    each time bucket (so dips stay visible) and the alert markers keep the firing ones
    first, then the most severe suppressed ones. Built as a plain dict (building it through
    altair's validating constructors costs ~0.2 s per update); :attr:`ThresholdExplorer.chart`
    turns it into an altair chart on demand.
    """
    from perfkit.report.charts import theme_config

    data = line if line is not None else _line_data(history, metric, max_points)
    x = {"field": "timestamp", "type": "temporal", "title": "time", "scale": {"type": "utc"},
         "axis": {"format": "%Y-%m-%d", "labelSeparation": 12}}
    multi = data["segment"].nunique() > 1
    line_color = ({"field": "segment", "type": "nominal", "title": "segment"} if multi
                  else {"value": "#4c78a8"})
    layers: list[dict[str, Any]] = [{
        "data": {"values": line_values if line_values is not None else _records_for_spec(data)},
        "mark": {"type": "line", "strokeWidth": 1.2},
        "encoding": {"x": x, "y": {"field": "value", "type": "quantitative", "title": metric,
                                   "scale": {"zero": False}}, "color": line_color},
    }]
    g0 = next((g for g in history.groups if metric in g.baseline), None)
    if g0 is not None:
        b = float(g0.baseline[metric].value)
        rules = [(b, "baseline", "#54a24b", None)]
        level = _threshold_level(metric, b, settings.thresholds.get(metric, math.nan),
                                 settings.threshold_mode)
        if level is not None and math.isfinite(level):
            rules.append((level, "alert threshold", "#d62728", [6, 4]))
        for value, label, color, dash in rules:
            if math.isfinite(value):
                mark = {"type": "rule", "color": color, "strokeWidth": 1.5}
                if dash:
                    mark["strokeDash"] = dash
                layers.append({"data": {"values": [{"y": value, "rule": label}]}, "mark": mark,
                               "encoding": {"y": {"field": "y", "type": "quantitative"},
                                            "tooltip": [{"field": "rule", "type": "nominal"},
                                                        {"field": "y", "type": "quantitative"}]}})
    if alerts.empty:
        pts = pd.DataFrame(columns=["timestamp", "value", "severity", "status"])
    else:
        pts = alerts[(alerts["metric"] == metric) & (alerts["alert_type"] == "performance_degradation")]
    if len(pts) > max_points:
        rank = pts["severity"].map({"minor": 1, "moderate": 2, "critical": 3})
        pts = pts.assign(_k=(pts["status"] == "fires") * 10 + rank) \
            .sort_values("_k", ascending=False, kind="stable").head(max_points)
    pts = pts[["timestamp", "value", "severity", "status"]].copy()
    pts["value"] = pts["value"].astype(float)
    pts["kind"] = np.where(pts["status"] == "fires", pts["severity"].astype(str), "suppressed")
    domain = [*_SEVERITIES, "suppressed"]
    scale = {"domain": domain, "range": [_SEVERITY_COLORS[s] for s in _SEVERITIES] + ["#9e9e9e"]}
    layers.append({
        "data": {"values": _records_for_spec(pts) if len(pts) else []},
        "mark": {"type": "point", "shape": "diamond", "size": 90, "opacity": 1, "strokeWidth": 1.5},
        "encoding": {
            "x": x,
            "y": {"field": "value", "type": "quantitative"},
            "color": {"field": "kind", "type": "nominal", "title": "would alert", "scale": scale},
            "fill": {"condition": {"test": "datum.kind != 'suppressed'", "field": "kind",
                                   "type": "nominal", "scale": scale, "legend": None},
                     "value": "white"},
            "tooltip": [{"field": "timestamp", "type": "temporal", "format": "%Y-%m-%d %H:%M UTC"},
                        {"field": "severity", "type": "nominal"},
                        {"field": "status", "type": "nominal"},
                        {"field": "value", "type": "quantitative", "format": ".4f"}],
        },
    })
    spec: dict[str, Any] = {
        "title": {"text": f"{history.model}: {metric}",
                  "subtitle": f"{history.n_batches} batches; markers: alerts as they would fire"
                  + (f" (line downsampled to <= {max_points} points)"
                     if history.n_batches > max_points else "")},
        "width": 640,
        "height": 240,
        "layer": layers,
        "config": theme_config(),
    }
    if multi:
        spec["resolve"] = {"scale": {"color": "independent"}}
    return spec


_TABLE_COLUMNS = ["timestamp", "segment", "metric", "alert_type", "severity", "value", "degradation",
                  "adjusted_p_value", "status"]


def _table_html(alerts: pd.DataFrame, max_rows: int) -> str:
    if alerts.empty:
        return "<p><i>No alert would fire with these settings.</i></p>"
    shown = alerts.tail(max_rows).iloc[::-1][_TABLE_COLUMNS].copy()
    shown["timestamp"] = pd.to_datetime(shown["timestamp"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    more = f"<p><i>latest {max_rows} of {len(alerts)} alerts</i></p>" if len(alerts) > max_rows else ""
    return more + shown.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}",
                                classes="perfkit-alert-table", border=0)


def _counts_text(counts: Mapping[str, int]) -> str:
    n = counts["fires"]
    return (f"{n} alert{'s' if n != 1 else ''} would fire "
            f"(critical {counts['critical']}, moderate {counts['moderate']}, minor {counts['minor']}); "
            f"{counts['suppressed']} suppressed by the cooldown")


# ------------------------------------------------------------------------------------------
# the widget
# ------------------------------------------------------------------------------------------
class ThresholdExplorer:
    """Sliders for thresholds, severity bands, cooldown, alpha and gating over a stored history.

    Every change replays the history (loaded once) through
    :func:`perfkit.analysis.degradation.replay` and updates :attr:`settings`,
    :attr:`cooldown_hours`, :attr:`alerts`, :attr:`counts`, :attr:`chart_spec` and the displayed
    chart, counts and table. :meth:`save` writes the chosen settings to a YAML config that
    :func:`perfkit.config.load_config` (and so a tracker) reads back.

    Parameters
    ----------
    source, model, segment, days, config, metrics, baseline
        As in :func:`explore_thresholds`.
    render_chart : bool, default True
        Render the chart (static SVG via vl-convert) into the widget on every change. The
        Vega-Lite spec (:attr:`chart_spec`) is always rebuilt; :attr:`chart` gives it as an
        altair chart.
    max_chart_points : int, default 2000
        Above this many batches the plotted line is downsampled (min/max per time bucket);
        alerts, counts and the table always use every batch.
    table_rows : int, default 50
        Latest alerts shown in the table (:attr:`alerts` holds them all).

    Attributes
    ----------
    settings : DetectionSettings
    cooldown_hours : float
    alerts : DataFrame
        The replay table (``status`` ``"fires"`` / ``"suppressed"``).
    counts : dict
        Firing alerts per severity, ``fires`` (all firing) and ``suppressed``.
    error : str or None
        Why the last change was refused (e.g. critical band below moderate); the previous
        results stay.
    threshold_sliders : dict
        ``{metric: FloatSlider}``; also ``moderate_slider``, ``critical_slider``,
        ``cooldown_slider``, ``alpha_slider``, ``gating_dropdown``, ``metric_dropdown``,
        ``path_text``, ``save_button``.
    widget : ipywidgets.VBox

    Examples
    --------
    >>> import tempfile, os
    >>> tracker = example_history(os.path.join(tempfile.mkdtemp(), "e.db"), n_batches=30,
    ...                           degrade_at=20, batch_size=400)
    >>> ex = ThresholdExplorer(tracker, render_chart=False)
    >>> before = ex.counts["fires"]
    >>> ex.threshold_sliders["accuracy"].value = 0.3
    >>> ex.counts["fires"] <= before, ex.settings.thresholds["accuracy"]
    (True, 0.3)
    >>> tracker.close()
    """

    def __init__(
        self,
        source: Any,
        *,
        model: str | None = None,
        segment: Any = ALL_SEGMENTS,
        days: float | None = None,
        config: PerformanceConfig | str | os.PathLike[str] | None = None,
        metrics: Sequence[str] | None = None,
        baseline: MetricReport | None = None,
        render_chart: bool = True,
        max_chart_points: int = MAX_CHART_POINTS,
        table_rows: int = 50,
    ) -> None:
        if isinstance(max_chart_points, bool) or not isinstance(max_chart_points, int) or max_chart_points < 10:
            raise ValidationError(f"max_chart_points must be an int >= 10, got {max_chart_points!r}",
                                  parameter="max_chart_points")
        self._history = _load(source, model=model, segment=segment, days=days, config=config,
                              metrics=metrics, baseline=baseline)
        self.config = self._history.config
        self.model = self._history.model
        self.metrics = list(self._history.metrics)
        self.render_chart = bool(render_chart)
        self.max_chart_points = max_chart_points
        self.table_rows = int(table_rows)
        self.settings = self.config.detection
        self.cooldown_hours = float(self.config.alert_cooldown_hours)
        self.alerts = pd.DataFrame()
        self.counts: dict[str, int] = {}
        self.chart_spec: dict[str, Any] = {}
        self._lines: dict[str, tuple[pd.DataFrame, list[dict[str, Any]]]] = {}
        self.error: str | None = None
        self.last_update_seconds = math.nan
        self.last_saved: Path | None = None
        self._build_widgets()
        self.update()

    # -------------------------------------------------------------- widgets
    def _build_widgets(self) -> None:
        import ipywidgets as w

        d = self.settings
        # wide enough for the longest description ("precision_macro threshold"): never cut in JupyterLab
        longest = max(len(f"{m} threshold") for m in self.metrics) if self.metrics else 0
        label_px = max(150, 8 * longest + 12)
        style = {"description_width": f"{label_px}px"}
        layout = w.Layout(width=f"{label_px + 250}px")
        side_style = {"description_width": "150px"}  # the right column's descriptions are short
        side_layout = w.Layout(width="400px")

        def slider(desc: str, value: float, lo: float, hi: float, step: float, fmt: str, side: bool = True) -> Any:
            return w.FloatSlider(value=value, min=lo, max=max(hi, value), step=step, description=desc,
                                 readout=True, readout_format=fmt, continuous_update=False,
                                 style=side_style if side else style, layout=side_layout if side else layout)

        self.threshold_sliders = {
            m: slider(f"{m} threshold", float(d.thresholds[m]), 0.001, max(0.5, 2 * d.thresholds[m]),
                      0.001, ".3f", side=False)
            for m in self.metrics
        }
        self.moderate_slider = slider("moderate from", float(d.severity_bands["moderate"]), 0.01, 1.0,
                                      0.01, ".2f")
        self.critical_slider = slider("critical from", float(d.severity_bands["critical"]), 0.01, 1.0,
                                      0.01, ".2f")
        self.cooldown_slider = slider("cooldown (hours)", self.cooldown_hours, 0.0, 168.0, 1.0, ".0f")
        self.alpha_slider = slider("alpha", float(d.alpha), 0.001, 0.2, 0.001, ".3f")
        self.gating_dropdown = w.Dropdown(options=list(GATING_OPTIONS), value=d.gating,
                                          description="statistical gating", style=side_style, layout=side_layout)
        self.metric_dropdown = w.Dropdown(options=self.metrics, value=self.metrics[0],
                                          description="chart metric", style=style, layout=layout)
        self.counts_html = w.HTML()
        self.counts_html.add_class("perfkit-alert-count")
        self.chart_html = w.HTML()
        self.table_html = w.HTML()
        self.path_text = w.Text(value="perfkit_thresholds.yaml", description="config file",
                                style=style, layout=layout)
        self.save_button = w.Button(description="Save", icon="save", button_style="primary")
        self.save_status = w.HTML()
        for widget in (*self.threshold_sliders.values(), self.moderate_slider, self.critical_slider,
                       self.cooldown_slider, self.alpha_slider, self.gating_dropdown):
            widget.observe(self._on_change, names="value")
        self.metric_dropdown.observe(self._on_metric, names="value")
        self.save_button.on_click(self._on_save)
        header = w.HTML(f"<b>Threshold explorer</b>: model <code>{html.escape(self.model)}</code>, "
                        f"{self._history.n_batches} batches")
        self.widget = w.VBox([
            header,
            w.HBox([w.VBox(list(self.threshold_sliders.values())),
                    w.VBox([self.moderate_slider, self.critical_slider, self.cooldown_slider,
                            self.alpha_slider, self.gating_dropdown])]),
            self.counts_html,
            self.metric_dropdown,
            self.chart_html,
            self.table_html,
            w.HBox([self.path_text, self.save_button, self.save_status]),
        ])

    def _on_change(self, _change: Any = None) -> None:
        self.update()

    def _on_metric(self, _change: Any = None) -> None:
        self._refresh_chart()

    def _on_save(self, _button: Any = None) -> None:
        try:
            path = self.save(self.path_text.value)
        except (ValidationError, OSError) as exc:
            self.save_status.value = f"<span style='color:#d62728'>{html.escape(str(exc))}</span>"
        else:
            self.save_status.value = f"saved to <code>{html.escape(str(path))}</code>"

    # -------------------------------------------------------------- state
    def _read_settings(self) -> tuple[DetectionSettings, float]:
        settings = _settings(
            self.config.detection,
            thresholds={m: s.value for m, s in self.threshold_sliders.items()},
            severity_bands={"moderate": self.moderate_slider.value, "critical": self.critical_slider.value},
            alpha=self.alpha_slider.value,
            gating=self.gating_dropdown.value,
        )
        return settings, _check_cooldown(self.cooldown_slider.value)

    def update(self) -> None:
        """Replay the history with the widgets' current values and refresh everything."""
        import time

        t0 = time.perf_counter()
        try:
            settings, cooldown = self._read_settings()
        except ValidationError as exc:
            self.error = str(exc)
            self.counts_html.value = f"<span style='color:#d62728'>{html.escape(self.error)}</span>"
            return
        self.error = None
        self.settings, self.cooldown_hours = settings, cooldown
        self.alerts = _replay(self._history, settings, cooldown)
        self.counts = alert_counts(self.alerts)
        self.counts_html.value = f"<b>{html.escape(_counts_text(self.counts))}</b>"
        self.table_html.value = _table_html(self.alerts, self.table_rows)
        self._refresh_chart()
        self.last_update_seconds = time.perf_counter() - t0
        logger.debug("threshold explorer updated in %.3f s", self.last_update_seconds)

    def _refresh_chart(self) -> None:
        metric = self.metric_dropdown.value
        if metric not in self._lines:  # the plotted series does not depend on the settings
            line = _line_data(self._history, metric, self.max_chart_points)
            self._lines[metric] = (line, _records_for_spec(line))
        line, values = self._lines[metric]
        self.chart_spec = _chart_spec(self._history, self.alerts, metric, self.settings,
                                      max_points=self.max_chart_points, line=line, line_values=values)
        if self.render_chart:
            from perfkit.report.display import chart_html

            self.chart_html.value = chart_html(self.chart_spec)

    @property
    def chart(self) -> Any:
        """The displayed chart as an altair chart (built from :attr:`chart_spec` on access)."""
        import altair as alt

        return alt.LayerChart.from_dict(self.chart_spec, validate=False)

    @property
    def history(self) -> pd.DataFrame:
        """The history frame(s) the explorer replays (loaded once), concatenated."""
        return pd.concat([g.frame[g.frame["_checked"]] for g in self._history.groups], ignore_index=True)

    def chosen_config(self) -> PerformanceConfig:
        """The explorer's config with the chosen detection settings and cooldown."""
        return self.config.replace(detection=self.settings, alert_cooldown_hours=self.cooldown_hours)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the chosen settings as the ``model_performance`` section of ``path``.

        When ``path`` exists, its other top-level sections, its unmanaged keys and the
        thresholds of metrics the explorer does not show are kept; the thresholds, severity
        bands, gating, significance level (and the rest of the detection settings the
        explorer used) and the cooldown are replaced.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        ValidationError
            If the current widget values are invalid (see :attr:`error`).
        """
        if self.error is not None:
            raise ValidationError(f"cannot save invalid settings: {self.error}", parameter="settings")
        p = Path(path if path is not None else self.path_text.value)
        base = load_config(p) if p.exists() else self.config.replace(model_name=self.model)
        shown = {m: self.settings.thresholds[m] for m in self.metrics}
        detection = self.settings.replace(thresholds={**base.detection.thresholds, **shown})
        out = save_config(base.replace(detection=detection, alert_cooldown_hours=self.cooldown_hours), p)
        self.last_saved = out
        logger.info("threshold explorer settings saved to %s", out)
        return out

    # -------------------------------------------------------------- display
    def display(self) -> None:
        """Show the widget in the notebook."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self) -> None:
        self.display()

    def __repr__(self) -> str:
        c = self.counts
        return (f"ThresholdExplorer(model={self.model!r}, batches={self._history.n_batches}, "
                f"metrics={self.metrics}, fires={c.get('fires')}, suppressed={c.get('suppressed')})")


# ------------------------------------------------------------------------------------------
# demo data
# ------------------------------------------------------------------------------------------
def example_history(
    store_url: str | os.PathLike[str],
    *,
    n_batches: int = 60,
    batch_size: int = 500,
    degrade_at: int | None = 40,
    accuracy: float = 0.9,
    degraded_accuracy: float = 0.75,
    freq: str = "D",
    start: datetime | None = None,
    model: str = "demo",
    config: PerformanceConfig | None = None,
    seed: int = 0,
):
    """Track a synthetic binary-classification history with a known degradation.

    Each batch has ``batch_size`` rows; predictions are right with probability
    ``accuracy`` before batch ``degrade_at`` (0-based) and ``degraded_accuracy`` from it on.
    The first batches become the baseline automatically (``baseline_batches`` of the
    config). Alerts go to the log only unless ``config`` says otherwise.

    Returns
    -------
    ModelPerformanceTracker
        Open on ``store_url`` (close it when done).

    Examples
    --------
    >>> import tempfile, os
    >>> t = example_history(os.path.join(tempfile.mkdtemp(), "x.db"), n_batches=8, degrade_at=None)
    >>> len(t.get_history())
    8
    >>> t.close()
    """
    from perfkit.config import parse_config
    from perfkit.tracker import ModelPerformanceTracker

    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ValidationError(f"n_batches must be an int >= 1, got {n_batches!r}", parameter="n_batches")
    cfg = config if config is not None else parse_config({"alert_channels": ["log"]}, source="<example>")
    tracker = ModelPerformanceTracker(store=_store_url(store_url), config=cfg, model=model)
    rng = np.random.default_rng(seed)
    t0 = start if start is not None else datetime(2025, 1, 1, tzinfo=UTC)
    step = pd.Timedelta(freq if freq[:1].isdigit() else f"1{freq}").to_pytimedelta()
    for i in range(n_batches):
        acc = degraded_accuracy if degrade_at is not None and i >= degrade_at else accuracy
        y = rng.integers(0, 2, batch_size)
        pred = np.where(rng.random(batch_size) < acc, y, 1 - y)
        proba = np.where(pred == 1, rng.uniform(0.5, 1.0, batch_size), rng.uniform(0.0, 0.5, batch_size))
        tracker.track_performance(y, pred, proba, timestamp=t0 + i * step, batch_id=f"b{i:05d}")
    return tracker
