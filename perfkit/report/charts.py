"""Altair chart builders for perfkit reports.

Every builder takes a tidy :class:`pandas.DataFrame`, validates the columns it needs and
returns a **new** altair chart styled by :func:`apply_theme`. Nothing here touches HTML by
hand: titles, segment names and every other user string travel to Vega-Lite as data or as
spec properties, and Vega renders them as text.

Timestamps are drawn on a UTC time scale, so a chart looks the same on every machine and in
every browser. Naive timestamps are taken to be UTC.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({
...     "timestamp": pd.date_range("2026-01-05", periods=4, freq="W", tz="UTC"),
...     "value": [0.91, 0.90, 0.84, 0.83],
...     "ci_lower": [0.89, 0.88, 0.82, 0.80],
...     "ci_upper": [0.93, 0.92, 0.86, 0.86],
... })
>>> chart = metric_chart(df, metric="accuracy", baseline=0.9, threshold=0.85)
>>> spec = chart.to_dict()
>>> spec["config"]["font"] == THEME_FONT
True
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from perfkit.exceptions import ValidationError
from perfkit.report._render import _spec, _vl_version, chart_to_svg

__all__ = [
    "SEVERITY_COLORS",
    "THEME_FONT",
    "apply_theme",
    "chart_to_svg",
    "explorer_chart",
    "metric_bounds",
    "metric_chart",
    "save_chart",
    "segment_chart",
    "theme_config",
    "threshold_explorer_chart",
    "volume_chart",
]

logger = logging.getLogger("perfkit")

#: Fixed colours of the alert severities (the scale never depends on which ones occur).
SEVERITY_COLORS: dict[str, str] = {
    "minor": "#f2c744",
    "moderate": "#f28e2b",
    "critical": "#d62728",
}
#: Font family used by every perfkit chart.
THEME_FONT = "Helvetica, Arial, sans-serif"

_WIDTH = 640
_HEIGHT = 260
_LINE_COLOR = "#4c78a8"
_OK_COLOR = "#4c78a8"
_ALERT_COLOR = "#d62728"
_BASELINE_COLOR = "#54a24b"
_THRESHOLD_COLOR = "#333333"
_TREND_COLOR = "#7f7f7f"
_CHANGE_POINT_COLOR = "#9467bd"
_ESTIMATE_COLOR = "#e377c2"
_ESTIMATE_DASH = [5, 3]
_SAVE_FORMATS = (".png", ".svg", ".html", ".json")


# --------------------------------------------------------------------------------------------
# theme
# --------------------------------------------------------------------------------------------

def _props(chart: Any, **kwargs: Any) -> Any:
    """``chart.properties(**kwargs)`` without altair's per-property JSON-schema validation.

    That validation costs ~0.1 s a property with jsonschema; perfkit's charts are built from
    fixed, tested code and their specs are made with ``to_dict(validate=False)`` anyway.
    """
    copy = chart.copy(deep=False)
    for key, value in kwargs.items():
        setattr(copy, key, value)
    return copy

def theme_config() -> dict[str, Any]:
    """Return the Vega-Lite ``config`` shared by every perfkit chart.

    Returns
    -------
    dict
        A fresh dictionary (safe to modify).

    Examples
    --------
    >>> theme_config()["view"]["continuousWidth"]
    640
    """
    return {
        "font": THEME_FONT,
        "view": {"continuousWidth": _WIDTH, "continuousHeight": _HEIGHT, "stroke": None},
        "title": {"fontSize": 15, "anchor": "start", "subtitleFontSize": 11},
        "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e6e6e6"},
        "legend": {"labelFontSize": 11, "titleFontSize": 12, "orient": "right"},
        "background": "white",
    }


def apply_theme(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Return a copy of ``chart`` carrying the perfkit theme as its ``config``.

    Every builder in this module calls it last. A themed chart cannot be placed inside
    another layer or concat (Vega-Lite allows ``config`` only at the top level): compose
    unthemed charts and theme the result, or drop the config with
    ``chart.copy(); chart.config = alt.Undefined``.

    Parameters
    ----------
    chart : altair chart
        Any top-level altair chart.

    Returns
    -------
    altair chart
        A new chart; ``chart`` is not modified.

    Examples
    --------
    >>> import altair as alt
    >>> themed = apply_theme(alt.Chart().mark_point())
    >>> themed.to_dict()["config"]["font"] == THEME_FONT
    True
    """
    themed = chart.copy(deep=True)
    themed.config = alt.Config(**theme_config())
    return themed


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _require_frame(df: Any, columns: Iterable[str], *, parameter: str = "df") -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(
            f"{parameter} must be a pandas DataFrame, got {type(df).__name__}",
            parameter=parameter,
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{parameter} is missing column(s) {missing}; it has {list(df.columns)}",
            parameter=parameter,
        )
    return df


def _utc(series: pd.Series, *, parameter: str) -> pd.Series:
    try:
        ts = pd.to_datetime(series)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{parameter}.timestamp must hold timestamps: {exc}", parameter=parameter
        ) from exc
    if ts.dt.tz is None:
        logger.debug("%s.timestamp is timezone-naive; treating it as UTC", parameter)
        return ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC")


def _prepare(df: Any, columns: Iterable[str], *, parameter: str = "df") -> pd.DataFrame:
    """Validate ``df`` and return a copy with a UTC ``timestamp`` column."""
    columns = list(columns)
    frame = _require_frame(df, columns, parameter=parameter).copy()
    if "timestamp" in columns:
        frame["timestamp"] = _utc(frame["timestamp"], parameter=parameter)
    return frame


def _timestamp_x(title: str | None = "time") -> alt.X:
    return alt.X(
        "timestamp:T",
        title=title,
        scale=alt.Scale(type="utc", padding=8),
        axis=alt.Axis(labelOverlap=True, tickCount=8),
    )


def _finite_number(value: Any, *, parameter: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{parameter} must be a number, got {value!r}", parameter=parameter
        ) from exc
    if out != out or out in (float("inf"), float("-inf")):
        raise ValidationError(f"{parameter} must be finite, got {value!r}", parameter=parameter)
    return out


def _direction_text(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


# --------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------
def metric_bounds(metric: str) -> tuple[float, float]:
    """Return the ``(lower, upper)`` bounds of ``metric`` from the metric table.

    Unknown names (and ``performance_score``, a weighted mean of bounded metrics) get
    ``(-inf, inf)`` and ``(0, 1)``.

    Examples
    --------
    >>> metric_bounds("accuracy"), metric_bounds("log_loss")
    ((0.0, 1.0), (0.0, inf))
    """
    if metric == "performance_score":
        return 0.0, 1.0
    from perfkit.metrics import get_metric

    try:
        spec = get_metric(metric)
    except Exception:  # noqa: BLE001 - any unknown name: no bounds
        return -math.inf, math.inf
    return float(spec.lower), float(spec.upper)


def _y_domain(values: Iterable[float], bounds: tuple[float, float]) -> list[float] | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.02, 1e-3)
    lo, hi = max(lo - pad, bounds[0]), min(hi + pad, bounds[1])
    if not hi > lo:
        hi = lo + 1e-9
    return [lo, hi]


def _legend(color: str, *, symbol: str = "stroke", dash: list[int] | None = None,
            opacity: float | None = None) -> alt.Legend:
    kw: dict[str, Any] = {"title": None, "symbolType": symbol, "orient": "right",
                          "symbolStrokeWidth": 2, "labelLimit": 220}
    if symbol != "stroke":
        kw["symbolFillColor"] = color
    if dash:
        kw["symbolDash"] = dash
    if opacity is not None:
        kw["symbolOpacity"] = opacity
    return alt.Legend(**kw)


def _keyed(chart: alt.Chart, label: str, color: str, **legend: Any) -> alt.Chart:
    """``chart`` coloured through a one-entry scale, so it gets its own legend entry ``label``."""
    return chart.transform_calculate(legend_entry=json.dumps(label)).encode(
        color=alt.Color("legend_entry:N", scale=alt.Scale(domain=[label], range=[color]),
                        legend=_legend(color, **legend))
    )


def _fmt_interval(lo: Any, hi: Any) -> str:
    try:
        lo_f, hi_f = float(lo), float(hi)
    except (TypeError, ValueError):
        return "–"
    if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
        return "–"
    return f"[{lo_f:.4f}, {hi_f:.4f}]"


_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITY_COLORS)}


def _snap_alerts(data: pd.DataFrame, alerts: pd.DataFrame) -> pd.DataFrame:
    """Put each alert on the point it belongs to: the latest point at or before it.

    Alerts before the first point are dropped (they belong to no drawn point); an alert
    never gets a marker of its own, so no marker can sit beside or after the points.
    """
    columns = ["timestamp", "severity", "value"]
    frame = _prepare(alerts, columns, parameter="alerts")[columns]
    frame["severity"] = frame["severity"].astype(str)
    unknown = sorted(set(frame["severity"]) - set(SEVERITY_COLORS))
    if unknown:
        raise ValidationError(
            f"alerts.severity has unknown value(s) {unknown}; valid: {list(SEVERITY_COLORS)}",
            parameter="alerts",
        )
    out = data.copy()
    out["alert_severity"] = None
    out["alert"] = "none"
    if not len(frame) or not len(out):
        return out
    order = out["timestamp"].sort_values(kind="stable")
    times = order.to_numpy()
    by_point: dict[int, list[str]] = {}
    for t, sev in zip(frame["timestamp"].to_numpy(), frame["severity"], strict=True):
        pos = times.searchsorted(t, side="right") - 1
        if pos < 0:
            continue
        by_point.setdefault(order.index[pos], []).append(sev)
    for idx, sevs in by_point.items():
        worst = max(sevs, key=_SEVERITY_RANK.__getitem__)
        out.at[idx, "alert_severity"] = worst
        out.at[idx, "alert"] = f"{len(sevs)} alert{'s' if len(sevs) > 1 else ''} ({worst})"
    return out


def metric_chart(
    df: pd.DataFrame,
    *,
    metric: str,
    baseline: float | None = None,
    threshold: float | None = None,
    higher_is_better: bool = True,
    alerts: pd.DataFrame | None = None,
    trend: pd.DataFrame | None = None,
    change_point: Any = None,
    title: str | None = None,
    bounds: tuple[float, float] | None = None,
    value_label: str = "value",
    interval_label: str = "95 % interval",
    estimates: pd.DataFrame | None = None,
    estimate_label: str = "estimate, labels pending",
    estimate_interval_label: str = "estimate interval",
) -> alt.LayerChart:
    """Plot one metric over time with its interval, baseline, threshold, trend and alerts.

    Every mark has its own legend entry (value, interval, baseline, alert threshold, trend
    fit, trend band, change point, alert severities, and the label-free estimate's dashed
    line and band when ``estimates`` are given). Alert markers are drawn from the points
    themselves, so each sits exactly on its point. Every point has a tooltip (time, value,
    interval, n, segment, alert: whichever columns ``df`` has). The y axis is clipped to the
    metric's bounds (:func:`metric_bounds`).

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp`` (tz-aware), ``value``; optional ``ci_lower`` and ``ci_upper``
        (drawn as a band), ``segment`` (one line per segment), ``n`` (rows behind the point),
        ``alert`` (tooltip text) and ``alert_severity`` (``minor`` / ``moderate`` /
        ``critical`` or None: the point gets an alert marker).
    metric : str
        Metric name, used for the y axis title and the bounds.
    baseline : float, optional
        Reference value, drawn as a solid horizontal rule.
    threshold : float, optional
        Metric level at which an alert fires (an absolute value on the y axis), drawn as a
        dashed rule.
    higher_is_better : bool, default True
        Direction of the metric, shown in the subtitle.
    alerts : pandas.DataFrame, optional
        Columns ``timestamp``, ``severity`` and ``value``: each alert is put on the latest
        point at or before its timestamp (its ``value`` is not used for placing it).
        Ignored when ``df`` has ``alert_severity``.
    trend : pandas.DataFrame, optional
        Columns ``timestamp``, ``fitted``; optional ``lower`` and ``upper`` for a band.
    change_point : timestamp-like, optional
        Drawn as a vertical rule.
    title : str, optional
        Chart title; defaults to ``metric``.
    bounds : (float, float), optional
        Bounds of the y axis; default the metric's.
    value_label, interval_label : str
        Legend labels of the points and of the band.
    estimates : pandas.DataFrame, optional
        Label-free estimates (:func:`perfkit.metrics.estimate`) of the batches whose labels
        have not arrived: columns ``timestamp``, ``value``; optional ``ci_lower`` /
        ``ci_upper`` (a band), ``n``, ``segment``. Drawn as a dashed line with hollow points
        in their own colour; once the labels arrive the realized points replace them (the
        caller passes pending batches only).
    estimate_label, estimate_interval_label : str
        Legend labels of the estimate line and of its band.

    Returns
    -------
    altair.LayerChart
        Layers named ``series_points``, ``alert_markers`` and ``estimate_points`` (SVG
        groups ``g.series_points_marks``, ``g.alert_markers_marks``,
        ``g.estimate_points_marks``).

    Raises
    ------
    ValidationError
        When a frame misses a column or a severity is unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.date_range("2026-01-05", periods=3, freq="W", tz="UTC")
    >>> df = pd.DataFrame({"timestamp": ts, "value": [0.9, 0.8, 0.7]})
    >>> alerts = pd.DataFrame({"timestamp": ts[2:], "severity": ["critical"], "value": [0.7]})
    >>> spec = metric_chart(df, metric="accuracy", alerts=alerts).to_dict()
    >>> spec["layer"][-1]["encoding"]["color"]["scale"]["range"]
    ['#f2c744', '#f28e2b', '#d62728']
    >>> spec["layer"][0]["encoding"]["y"]["scale"]["domain"][1] <= 1
    True
    """
    columns_present = set(getattr(df, "columns", ()))
    has_ci = {"ci_lower", "ci_upper"} <= columns_present
    has_segment = "segment" in columns_present
    optional = [c for c in ("ci_lower", "ci_upper", "segment", "n", "alert", "alert_severity")
                if c in columns_present]
    columns = ["timestamp", "value", *optional]
    data = _prepare(df, columns)[columns].reset_index(drop=True)
    if has_segment:
        data["segment"] = data["segment"].astype(str)
    # one line per segment only when there are several; a single label is tooltip text
    by_segment = has_segment and data["segment"].nunique() > 1
    if "alert_severity" in data.columns:
        data["alert_severity"] = [s if isinstance(s, str) and s else None for s in data["alert_severity"]]
        bad = sorted({s for s in data["alert_severity"] if isinstance(s, str)} - set(SEVERITY_COLORS))
        if bad:
            raise ValidationError(f"df.alert_severity has unknown value(s) {bad}; valid: {list(SEVERITY_COLORS)}",
                                  parameter="df")
        if "alert" not in data.columns:
            data["alert"] = [s if isinstance(s, str) else "none" for s in data["alert_severity"]]
    elif alerts is not None:
        data = _snap_alerts(data, alerts)
    if has_ci:
        data["interval"] = [_fmt_interval(lo, hi) for lo, hi in zip(data["ci_lower"], data["ci_upper"],
                                                                     strict=True)]
    y_bounds = bounds if bounds is not None else metric_bounds(str(metric))
    base_v = _finite_number(baseline, parameter="baseline") if baseline is not None else None
    thr_v = _finite_number(threshold, parameter="threshold") if threshold is not None else None

    trend_frame = None
    if trend is not None:
        has_band = {"lower", "upper"} <= set(getattr(trend, "columns", ()))
        tcols = ["timestamp", "fitted"] + (["lower", "upper"] if has_band else [])
        trend_frame = _prepare(trend, tcols, parameter="trend")[tcols]
    cp_frame = None
    if change_point is not None:
        try:
            stamp = pd.Timestamp(change_point)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"change_point must be a timestamp, got {change_point!r}",
                                  parameter="change_point") from exc
        cp_frame = _prepare(pd.DataFrame({"timestamp": [stamp], "label": ["change point"]}),
                            ["timestamp", "label"], parameter="change_point")

    est_frame = None
    if estimates is not None and len(estimates):
        ecols = ["timestamp", "value"] + [c for c in ("ci_lower", "ci_upper", "n", "segment")
                                          if c in estimates.columns]
        est_frame = _prepare(estimates, ecols, parameter="estimates")[ecols].reset_index(drop=True)
        est_frame = est_frame[np.isfinite(est_frame["value"].to_numpy(float))].reset_index(drop=True)
        if "segment" in est_frame.columns:
            est_frame["segment"] = est_frame["segment"].astype(str)
        if not len(est_frame):
            est_frame = None

    domain_values: list[Any] = list(data["value"])
    if has_ci:
        domain_values += list(data["ci_lower"]) + list(data["ci_upper"])
    if est_frame is not None:
        domain_values += list(est_frame["value"])
        if {"ci_lower", "ci_upper"} <= set(est_frame.columns):
            domain_values += list(est_frame["ci_lower"]) + list(est_frame["ci_upper"])
    domain_values += [v for v in (base_v, thr_v) if v is not None]
    if trend_frame is not None:
        domain_values += list(trend_frame["fitted"])
    domain = _y_domain(domain_values, y_bounds)
    y_scale = alt.Scale(zero=False, domain=domain, clamp=True) if domain else alt.Scale(zero=False)
    y_title = str(metric)

    def y(field: str) -> alt.Y:
        return alt.Y(f"{field}:Q", title=y_title, scale=y_scale)

    x = _timestamp_x()
    tooltip: list[Any] = [alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
                          alt.Tooltip("value:Q", title=y_title, format=".4f")]
    if has_ci:
        tooltip.append(alt.Tooltip("interval:N", title=interval_label))
    if "n" in data.columns:
        tooltip.append(alt.Tooltip("n:Q", title="n (rows)", format=","))
    if has_segment:
        tooltip.append(alt.Tooltip("segment:N", title="segment"))
    if "alert" in data.columns:
        tooltip.append(alt.Tooltip("alert:N", title="alert"))

    base = alt.Chart(data)
    # drawn bottom to top: bands, lines, rules, then the points and alert markers (on top, so
    # every point receives the pointer and shows its tooltip)
    bands: list[Any] = []
    lines: list[Any] = []
    rules: list[Any] = []
    tops: list[Any] = []
    if has_ci:
        band = base.mark_area(opacity=0.18, clip=True).encode(x=x, y=y("ci_lower"), y2="ci_upper:Q")
        if by_segment:
            band = band.encode(color=alt.Color("segment:N", title="segment", legend=None))
        else:
            band = _keyed(band, interval_label, _LINE_COLOR, symbol="square", opacity=0.3)
        bands.append(band)
    line = base.mark_line(clip=True).encode(x=x, y=y("value"))
    points = _props(base.mark_point(filled=True, size=36, opacity=1).encode(
        x=x, y=y("value"), tooltip=tooltip), name="series_points")
    if by_segment:
        seg_color = alt.Color("segment:N", title="segment")
        lines.append(line.encode(color=seg_color))
        tops.append(points.encode(color=seg_color))
    else:
        lines.append(_keyed(line, value_label, _LINE_COLOR, symbol="circle"))
        tops.append(points.encode(color=alt.value(_LINE_COLOR)))
    if base_v is not None:
        rules.append(_hrule(base_v, "baseline", _BASELINE_COLOR, dashed=False, y_scale=y_scale))
    if thr_v is not None:
        rules.append(_hrule(thr_v, "alert threshold", _THRESHOLD_COLOR, dashed=True, y_scale=y_scale))
    if trend_frame is not None:
        tbase = alt.Chart(trend_frame)
        if "lower" in trend_frame.columns:
            bands.append(_keyed(tbase.mark_area(opacity=0.12, clip=True).encode(
                x=x, y=y("lower"), y2="upper:Q"), "trend band", _TREND_COLOR, symbol="square", opacity=0.3))
        lines.append(_keyed(tbase.mark_line(strokeDash=[2, 2], strokeWidth=1.5, clip=True).encode(
            x=x, y=y("fitted"), tooltip=[alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
                                         alt.Tooltip("fitted:Q", title="trend", format=".4f")]),
            "trend fit", _TREND_COLOR, dash=[2, 2]))
    if cp_frame is not None:
        rules.append(_keyed(alt.Chart(cp_frame).mark_rule(strokeDash=[4, 2], strokeWidth=1.5).encode(
            x=x, tooltip=[alt.Tooltip("label:N", title="rule"),
                          alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC")]),
            "change point", _CHANGE_POINT_COLOR, dash=[4, 2]))
    if est_frame is not None:
        _estimate_layers(est_frame, x, y, y_title, estimate_label, estimate_interval_label, bands, lines, tops)
    if "alert_severity" in data.columns and data["alert_severity"].notna().any():
        tops.append(_props(base.transform_filter("isValid(datum.alert_severity)").mark_point(
            filled=True, size=150, shape="diamond", opacity=1).encode(
            x=x, y=y("value"),
            color=alt.Color("alert_severity:N", title="alert",
                            scale=alt.Scale(domain=list(SEVERITY_COLORS), range=list(SEVERITY_COLORS.values())),
                            legend=alt.Legend(title="alert", symbolType="diamond", orient="right")),
            tooltip=tooltip,
        ), name="alert_markers"))
    layers = [*bands, *lines, *rules, *tops]

    subtitle = _direction_text(higher_is_better)
    chart = _props(alt.layer(*layers),
                   title=alt.TitleParams(text=str(title if title is not None else metric), subtitle=subtitle)
                   ).resolve_scale(color="independent")
    return apply_theme(chart)


def _estimate_layers(est: pd.DataFrame, x: Any, y: Any, y_title: str, label: str, band_label: str,
                     bands: list, lines: list, tops: list) -> None:
    """The label-free estimate: band, dashed line (legend ``label``) and hollow points."""
    has_ci = {"ci_lower", "ci_upper"} <= set(est.columns)
    if has_ci:
        est = est.assign(interval=[_fmt_interval(lo, hi) for lo, hi in zip(est["ci_lower"], est["ci_upper"],
                                                                            strict=True)])
    tooltip: list[Any] = [alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
                          alt.Tooltip("value:Q", title=f"{y_title} (estimate)", format=".4f")]
    if has_ci:
        tooltip.append(alt.Tooltip("interval:N", title=band_label))
    if "n" in est.columns:
        tooltip.append(alt.Tooltip("n:Q", title="n (rows)", format=","))
    if "segment" in est.columns:
        tooltip.append(alt.Tooltip("segment:N", title="segment"))
    tooltip.append(alt.Tooltip("labels:N", title="labels"))
    ebase = alt.Chart(est.assign(labels="pending (label-free estimate)"))
    if has_ci:
        bands.append(_keyed(ebase.mark_area(opacity=0.13, clip=True).encode(x=x, y=y("ci_lower"), y2="ci_upper:Q"),
                            band_label, _ESTIMATE_COLOR, symbol="square", opacity=0.3))
    lines.append(_keyed(ebase.mark_line(strokeDash=_ESTIMATE_DASH, strokeWidth=1.8, clip=True).encode(
        x=x, y=y("value")), label, _ESTIMATE_COLOR, dash=_ESTIMATE_DASH))
    tops.append(_props(ebase.mark_point(filled=False, size=40, strokeWidth=1.5, opacity=1).encode(
        x=x, y=y("value"), color=alt.value(_ESTIMATE_COLOR), tooltip=tooltip), name="estimate_points"))


def _hrule(value: float, label: str, color: str, *, dashed: bool, y_scale: Any = None) -> alt.Chart:
    frame = pd.DataFrame({"y": [value], "label": [label]})
    mark: dict[str, Any] = {"strokeWidth": 1.5, "clip": True}
    if dashed:
        mark["strokeDash"] = [6, 4]
    chart = alt.Chart(frame).mark_rule(**mark).encode(
        y=alt.Y("y:Q") if y_scale is None else alt.Y("y:Q", scale=y_scale),
        tooltip=[alt.Tooltip("label:N", title="rule"), alt.Tooltip("y:Q", title="value", format=".4f")],
    )
    return _keyed(chart, label, color, dash=[6, 4] if dashed else None)



def volume_chart(df: pd.DataFrame, *, title: str = "samples per period") -> alt.Chart:
    """Bar chart of ``sample_count`` over time.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp`` and ``sample_count``.
    title : str, default "samples per period"

    Returns
    -------
    altair.Chart

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=3, tz="UTC"),
    ...                    "sample_count": [120, 80, 95]})
    >>> volume_chart(df).to_dict()["mark"]["type"]
    'bar'
    """
    data = _prepare(df, ["timestamp", "sample_count"])[["timestamp", "sample_count"]]
    chart = _props(alt.Chart(data).mark_bar(color=_LINE_COLOR).encode(
        x=_timestamp_x(),
        y=alt.Y("sample_count:Q", title="samples"),
        tooltip=[
            alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
            alt.Tooltip("sample_count:Q", title="samples", format=","),
        ],
    ), title=str(title), height=140)
    return apply_theme(chart)


def segment_chart(
    df: pd.DataFrame,
    *,
    metric: str,
    higher_is_better: bool = True,
    title: str | None = None,
) -> alt.LayerChart:
    """Latest value of ``metric`` per segment with its interval, worst segment first.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``segment``, ``value``; optional ``timestamp`` (the latest row of each segment
        is used) and ``ci_lower`` / ``ci_upper`` (error bars).
    metric : str
        Metric name (x axis title).
    higher_is_better : bool, default True
        Decides which end is "worst": the lowest values come first when True.
    title : str, optional

    Returns
    -------
    altair.LayerChart

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"segment": ["a", "b", "c"], "value": [0.9, 0.7, 0.8],
    ...                    "ci_lower": [0.85, 0.6, 0.75], "ci_upper": [0.95, 0.8, 0.85]})
    >>> segment_chart(df, metric="accuracy").to_dict()["layer"][0]["encoding"]["y"]["sort"]
    ['b', 'c', 'a']
    """
    columns = ["segment", "value"]
    has_ts = "timestamp" in getattr(df, "columns", ())
    has_ci = "ci_lower" in getattr(df, "columns", ()) and "ci_upper" in df.columns
    columns += ["timestamp"] if has_ts else []
    columns += ["ci_lower", "ci_upper"] if has_ci else []
    data = _prepare(df, columns)[columns]
    data["segment"] = data["segment"].astype(str)
    if has_ts:
        data = data.sort_values("timestamp").groupby("segment", sort=False).tail(1)
    else:
        data = data.groupby("segment", sort=False).tail(1)
    data = data.sort_values("value", ascending=higher_is_better, kind="stable")
    order = data["segment"].tolist()

    y = alt.Y("segment:N", title="segment", sort=order)
    tooltip = [alt.Tooltip("segment:N"), alt.Tooltip("value:Q", title=str(metric), format=".4f")]
    if has_ci:
        tooltip += [alt.Tooltip("ci_lower:Q", format=".4f"), alt.Tooltip("ci_upper:Q", format=".4f")]
    base = alt.Chart(data)
    layers = [
        base.mark_point(filled=True, size=80, color=_LINE_COLOR).encode(
            y=y,
            x=alt.X("value:Q", title=str(metric), scale=alt.Scale(zero=False)),
            tooltip=tooltip,
        )
    ]
    if has_ci:
        layers.append(
            base.mark_errorbar(ticks=True, color=_LINE_COLOR).encode(
                y=y, x=alt.X("ci_lower:Q", title=str(metric)), x2="ci_upper:Q"
            )
        )
    chart = _props(
        alt.layer(*layers),
        title=alt.TitleParams(
            text=str(title) if title is not None else f"{metric} by segment (worst first)",
            subtitle=_direction_text(higher_is_better),
        ),
        height=alt.Step(22),
    )
    return apply_theme(chart)


def _metric_select_expr(param: str, values: Mapping[str, float], default: float) -> str:
    expr = repr(float(default))
    for name, v in reversed(list(values.items())):
        expr = f"({param} === {json.dumps(name)} ? {float(v)!r} : {expr})"
    return expr


def explorer_chart(
    df: pd.DataFrame,
    *,
    metrics: Mapping[str, Mapping[str, Any]],
    initial_metric: str | None = None,
    initial_threshold: float = 0.05,
    max_threshold: float = 0.3,
    title: str | None = None,
    decision: Mapping[str, Any] | None = None,
    initial_alerts: Mapping[str, Sequence[str]] | None = None,
    threshold_mode: str = "relative",
) -> alt.LayerChart:
    """Offline threshold explorer over several metrics: a metric selector and a threshold slider.

    Everything is computed in the browser (no kernel). With ``decision`` the page evaluates
    the tracker's own rule (:func:`perfkit.analysis.decide` and the cooldown, ported to
    JavaScript in :mod:`perfkit.report._explorer_js`) for the selected metric at the slider's
    threshold, so the red points and the count equal :func:`perfkit.analysis.replay`;
    without it a point is red when its relative degradation exceeds the threshold. A dashed
    rule marks the metric level the threshold corresponds to (at the model baseline) and a
    label above the plot says "N alerts would fire". The slider and the label are in
    percent; the y axis of each metric is fixed (it does not move with the slider) and
    clipped to the metric's bounds.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp``, ``metric``, ``value``.
    metrics : mapping
        ``{metric: {"baseline": float, "higher_is_better": bool}}``; rows of other metrics
        are ignored. Baselines must be finite and non-zero.
    initial_metric : str, optional
        Metric shown first (default: the first of ``metrics``).
    initial_threshold : float, default 0.05
        Starting threshold as a fraction (0.05 = 5 %; the slider shows percent).
    max_threshold : float, default 0.3
        Slider maximum, as a fraction.
    title : str, optional
    decision : mapping, optional
        The tracker's decision inputs (:func:`perfkit.report._explorer.explorer_payload`);
        ``df`` then needs a ``key`` column naming each point's check. The page evaluates the
        tracker's rule (tests, false-discovery family, window check, cooldown) in JavaScript
        and colours the points whose alert would fire; without it the rule is the point
        estimate against the threshold alone.
    initial_alerts : mapping, optional
        With ``decision``: ``{"fire": keys, "suppressed": keys}`` at the initial metric and
        threshold (computed in Python), shown before any script runs.

    Returns
    -------
    altair.LayerChart
        Params ``threshold`` (percent, a range input) and ``explorer_metric`` (a select);
        layers named ``threshold_points``, ``threshold_rule`` and ``alert_count``.

    Raises
    ------
    ValidationError
        Bad baselines, thresholds or metric names (``parameter`` names which).

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.date_range("2026-01-01", periods=2, tz="UTC")
    >>> df = pd.DataFrame({"timestamp": list(ts) * 2, "metric": ["accuracy"] * 2 + ["log_loss"] * 2,
    ...                    "value": [0.9, 0.8, 0.3, 0.5]})
    >>> spec = explorer_chart(df, metrics={"accuracy": {"baseline": 0.9, "higher_is_better": True},
    ...                                    "log_loss": {"baseline": 0.3, "higher_is_better": False}}).to_dict()
    >>> [p["name"] for p in spec["params"]]
    ['threshold', 'explorer_metric']
    >>> spec["params"][1]["bind"]["options"]
    ['accuracy', 'log_loss']
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationError("metrics must be a non-empty mapping metric -> {baseline, higher_is_better}",
                              parameter="metrics")
    info: dict[str, tuple[float, bool]] = {}
    for name, spec in metrics.items():
        b = _finite_number((spec or {}).get("baseline"), parameter="baseline")
        if b == 0:
            raise ValidationError(f"baseline of {name!r} must be non-zero for a relative threshold",
                                  parameter="baseline")
        info[str(name)] = (b, bool(spec.get("higher_is_better", True)))
    first = str(initial_metric) if initial_metric is not None else next(iter(info))
    if first not in info:
        raise ValidationError(f"initial_metric {initial_metric!r} is not one of {list(info)}",
                              parameter="initial_metric")
    max_t = _finite_number(max_threshold, parameter="max_threshold")
    if max_t <= 0:
        raise ValidationError(f"max_threshold must be > 0, got {max_threshold!r}", parameter="max_threshold")
    init_t = _finite_number(initial_threshold, parameter="initial_threshold")
    if not 0 <= init_t <= max_t:
        raise ValidationError(f"initial_threshold must be within [0, {max_t}], got {initial_threshold!r}",
                              parameter="initial_threshold")
    extra = [c for c in ("baseline", "segment", "key") if c in getattr(df, "columns", ())]
    if decision is not None and "key" not in extra:
        raise ValidationError("df needs a 'key' column with decision=", parameter="df")
    data = _prepare(df, ["timestamp", "metric", "value", *extra])[["timestamp", "metric", "value", *extra]]
    data["metric"] = data["metric"].astype(str)
    data = data[data["metric"].isin(list(info))].reset_index(drop=True)
    if "baseline" not in extra:
        data["baseline"] = [info[m][0] for m in data["metric"]]
    bad = ~(np.isfinite(data["baseline"].to_numpy(float)) & (data["baseline"].to_numpy(float) != 0))
    if bad.any():
        raise ValidationError("df.baseline must be finite and non-zero", parameter="df")
    has_segment = "segment" in extra
    if has_segment:
        data["segment"] = data["segment"].astype(str)
    data["sign"] = [1.0 if info[m][1] else -1.0 for m in data["metric"]]

    if threshold_mode not in ("relative", "absolute"):
        raise ValidationError(f"threshold_mode must be 'relative' or 'absolute', got {threshold_mode!r}",
                              parameter="threshold_mode")
    relative = threshold_mode == "relative"
    unit = "%" if relative else "hundredths"
    pct_max = round(max_t * 100, 6)
    threshold = alt.param(name="threshold", value=round(init_t * 100, 6),
                          bind=alt.binding_range(min=0, max=pct_max, step=0.5,
                                                 name=f"alert threshold ({unit} worse than baseline) "))
    selected = alt.param(name="explorer_metric", value=first,
                         bind=alt.binding_select(options=list(info), name="metric "))
    # relative degradation, in percent of the baseline, positive = worse
    degradation = "100 * datum.sign * (datum.baseline - datum.value) / abs(datum.baseline)"
    params = [threshold, selected]
    if decision is None:
        flag = "datum.metric === explorer_metric && datum.degradation > threshold"
        status = "datum.degradation > threshold ? 'would alert' : 'ok'"
    else:
        init = initial_alerts or {}
        fire = [str(k) for k in init.get("fire", [])]
        supp = [str(k) for k in init.get("suppressed", [])]
        params += [alt.param(name="fire_keys", value=fire), alt.param(name="suppressed_keys", value=supp),
                   alt.param(name="fire_count", value=len(fire))]
        flag = "datum.metric === explorer_metric && indexof(fire_keys, datum.key) >= 0"
        status = ("indexof(fire_keys, datum.key) >= 0 ? 'would alert' : "
                  "(indexof(suppressed_keys, datum.key) >= 0 ? 'suppressed (cooldown)' : 'ok')")
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    for m, (b, hib) in info.items():
        vals = list(data.loc[data["metric"] == m, "value"]) + list(data.loc[data["metric"] == m, "baseline"])
        vals += [b, b - (1 if hib else -1) * init_t * abs(b)]
        dom = _y_domain(vals, metric_bounds(m)) or [b - 1, b + 1]
        lows[m], highs[m] = dom
    y_scale = alt.Scale(zero=False, domainMin=alt.ExprRef(_metric_select_expr("explorer_metric", lows, 0)),
                        domainMax=alt.ExprRef(_metric_select_expr("explorer_metric", highs, 1)))
    y = alt.Y("value:Q", title="value of the selected metric", scale=y_scale)
    x = _timestamp_x()
    base = alt.Chart(data).transform_calculate(degradation=degradation).transform_calculate(
        flag=f"({flag}) ? 1 : 0", status=status)
    shown = base.transform_filter("datum.metric === explorer_metric")
    line = shown.mark_line(color="#bbbbbb", clip=True).encode(x=x, y=y)
    if has_segment:
        line = line.encode(detail="segment:N")
    points = _props(shown.mark_point(filled=True, size=70, opacity=1).encode(
        x=x, y=y,
        color=alt.Color("status:N", title="at this threshold",
                        scale=alt.Scale(domain=["ok", "would alert", "suppressed (cooldown)"],
                                        range=[_OK_COLOR, _ALERT_COLOR, "#f2a93b"])),
        tooltip=[
            alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
            alt.Tooltip("metric:N"),
            *([alt.Tooltip("segment:N")] if has_segment else []),
            alt.Tooltip("value:Q", title="value", format=".4f"),
            alt.Tooltip("baseline:Q", format=".4f"),
            alt.Tooltip("degradation:Q", title="worse than baseline (%)", format=".1f"),
            alt.Tooltip("status:N"),
        ],
    ), name="threshold_points")
    rules = pd.DataFrame({"metric": list(info), "baseline": [v[0] for v in info.values()],
                          "sign": [1.0 if v[1] else -1.0 for v in info.values()]})
    rule_base = alt.Chart(rules).transform_filter("datum.metric === explorer_metric")
    baseline_rule = rule_base.transform_calculate(label="'baseline'").mark_rule(
        color=_BASELINE_COLOR, strokeWidth=1.5, clip=True).encode(
        y=alt.Y("baseline:Q", scale=y_scale),
        tooltip=[alt.Tooltip("label:N", title="rule"), alt.Tooltip("baseline:Q", format=".4f")])
    rule = _props(rule_base.transform_calculate(
        limit=("datum.baseline - datum.sign * threshold / 100 * abs(datum.baseline)" if relative else
               "datum.baseline - datum.sign * threshold / 100"), label="'alert threshold'",
    ).mark_rule(color=_ALERT_COLOR, strokeDash=[6, 4], strokeWidth=1.5, clip=True).encode(
        y=alt.Y("limit:Q", scale=y_scale),
        tooltip=[alt.Tooltip("label:N", title="rule"), alt.Tooltip("limit:Q", format=".4f")],
    ), name="threshold_rule")
    text = ("datum.n + (datum.n === 1 ? ' alert would fire' : ' alerts would fire') + ' for ' + explorer_metric"
            f" + ' at a threshold of ' + format(threshold, '.1f') + ' {unit} worse than baseline'")
    if decision is None:
        count_data = base.transform_aggregate(n="sum(flag)")
    else:  # the count is the decision script's (a signal), so it is there even with no point of the metric
        count_data = alt.Chart(pd.DataFrame({"one": [1]})).transform_calculate(n="fire_count")
    count = _props(count_data.transform_calculate(label=text).mark_text(
        align="left", baseline="bottom", fontSize=13, fontWeight="bold", color="#333333").encode(
        x=alt.value(0), y=alt.value(-8), text="label:N"
    ), name="alert_count")
    usermeta: dict[str, Any] = {"embedOptions": {"renderer": "svg", "actions": False}}
    if decision is not None:
        usermeta["perfkit_explorer"] = dict(decision)
    subtitle = ("the tracker's rule: test against each segment's baseline, false-discovery control, cooldown"
                if decision is not None else
                "relative change against each metric's baseline, in percent (positive = worse)")

    chart = _props(
        alt.layer(line, baseline_rule, rule, points, count).add_params(*params),
        title=alt.TitleParams(text=str(title) if title is not None else "threshold explorer", subtitle=subtitle,
                              offset=26),
        usermeta=usermeta,
    )
    return apply_theme(chart)


def threshold_explorer_chart(
    df: pd.DataFrame,
    *,
    metric: str,
    baseline: float,
    higher_is_better: bool = True,
    initial_threshold: float = 0.05,
    max_threshold: float = 0.3,
    title: str | None = None,
) -> alt.LayerChart:
    """One-metric :func:`explorer_chart`: ``df`` has ``timestamp`` and ``value``.

    Raises
    ------
    ValidationError
        If ``baseline`` is zero or not finite, or the thresholds are out of range.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=3, tz="UTC"),
    ...                    "value": [0.9, 0.84, 0.8]})
    >>> spec = threshold_explorer_chart(df, metric="accuracy", baseline=0.9).to_dict()
    >>> spec["params"][0]["name"], spec["params"][0]["value"]
    ('threshold', 5.0)
    >>> spec["params"][0]["bind"]["input"]
    'range'
    """
    frame = _prepare(df, ["timestamp", "value"])[["timestamp", "value"]].assign(metric=str(metric))
    return explorer_chart(frame, metrics={str(metric): {"baseline": baseline, "higher_is_better": higher_is_better}},
                          initial_threshold=initial_threshold, max_threshold=max_threshold,
                          title=title if title is not None else f"{metric}: threshold explorer")


# --------------------------------------------------------------------------------------------
# rendering / saving
# --------------------------------------------------------------------------------------------
def _standalone_html(spec: dict[str, Any]) -> str:
    """One offline page: the Vega bundle inlined once plus the chart's static SVG/upgrade."""
    import html

    from perfkit.report.display import chart_html
    from perfkit.report.html import vega_bundle

    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    page_title = html.escape(title if isinstance(title, str) else "perfkit chart")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{page_title}</title>\n"
        f'<script type="text/javascript">\n{vega_bundle()}\n</script>\n'
        "</head>\n<body>\n"
        f"{chart_html(spec)}\n"
        "</body>\n</html>\n"
    )


def save_chart(chart: Any, path: str | Path) -> Path:
    """Save ``chart`` by file extension: ``.png``, ``.svg``, ``.html`` or ``.json``.

    PNG and SVG are rendered in-process by vl-convert (no browser). HTML is one standalone
    page with the Vega libraries inlined once and the static SVG as a fallback, so it works
    offline (even with scripts blocked). JSON is the Vega-Lite spec.

    Parameters
    ----------
    chart : altair chart or dict
    path : str or pathlib.Path
        Output path; its parent directory must exist.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    ValidationError
        For an unsupported extension (``parameter == "output_path"``).

    Examples
    --------
    >>> import tempfile, altair as alt, pandas as pd
    >>> chart = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = save_chart(chart, f"{tmp}/chart.json")
    ...     out.read_text().startswith("{")
    True
    """
    output_path = Path(path)
    suffix = output_path.suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise ValidationError(
            f"output_path {str(output_path)!r} has unsupported extension {suffix!r}; "
            f"use one of {list(_SAVE_FORMATS)}",
            parameter="output_path",
        )
    spec = _spec(chart)
    import vl_convert as vlc

    if suffix == ".json":
        output_path.write_text(json.dumps(spec, indent=2, ensure_ascii=False), encoding="utf-8")
    elif suffix == ".svg":
        output_path.write_text(chart_to_svg(spec), encoding="utf-8")
    elif suffix == ".png":
        png = vlc.vegalite_to_png(spec, vl_version=_vl_version(), scale=2, allowed_base_urls=[])
        output_path.write_bytes(png)
    else:
        output_path.write_text(_standalone_html(spec), encoding="utf-8")
    logger.debug("saved chart to %s", output_path)
    return output_path
