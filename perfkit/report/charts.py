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
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from perfkit.exceptions import ValidationError

__all__ = [
    "SEVERITY_COLORS",
    "THEME_FONT",
    "apply_theme",
    "chart_to_svg",
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
_THRESHOLD_COLOR = "#d62728"
_TREND_COLOR = "#7f7f7f"
_SAVE_FORMATS = (".png", ".svg", ".html", ".json")


# --------------------------------------------------------------------------------------------
# theme
# --------------------------------------------------------------------------------------------
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
        scale=alt.Scale(type="utc"),
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
) -> alt.LayerChart:
    """Plot one metric over time with its interval, baseline, threshold and alerts.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp`` (tz-aware), ``value``; optional ``ci_lower`` and ``ci_upper``
        (drawn as a band) and ``segment`` (one line per segment).
    metric : str
        Metric name, used for the y axis title.
    baseline : float, optional
        Reference value, drawn as a solid horizontal rule.
    threshold : float, optional
        Metric level at which an alert fires (an absolute value on the y axis), drawn as a
        dashed rule.
    higher_is_better : bool, default True
        Direction of the metric, shown in the subtitle.
    alerts : pandas.DataFrame, optional
        Columns ``timestamp``, ``severity`` (``minor``, ``moderate``, ``critical``) and
        ``value``; drawn as markers with the fixed colours of :data:`SEVERITY_COLORS`.
    trend : pandas.DataFrame, optional
        Columns ``timestamp``, ``fitted``; optional ``lower`` and ``upper`` for a band.
    change_point : timestamp-like, optional
        Drawn as a vertical rule.
    title : str, optional
        Chart title; defaults to ``metric``.

    Returns
    -------
    altair.LayerChart

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
    """
    has_ci = "ci_lower" in getattr(df, "columns", ()) and "ci_upper" in df.columns
    has_segment = "segment" in getattr(df, "columns", ())
    columns = ["timestamp", "value"]
    columns += ["ci_lower", "ci_upper"] if has_ci else []
    columns += ["segment"] if has_segment else []
    data = _prepare(df, columns)[columns]
    if has_segment:
        data["segment"] = data["segment"].astype(str)

    y_title = str(metric)
    x = _timestamp_x()
    tooltip: list[Any] = [
        alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
        alt.Tooltip("value:Q", title=y_title, format=".4f"),
    ]
    if has_ci:
        tooltip += [
            alt.Tooltip("ci_lower:Q", format=".4f"),
            alt.Tooltip("ci_upper:Q", format=".4f"),
        ]
    if has_segment:
        tooltip.append(alt.Tooltip("segment:N"))
    color: Any = (
        alt.Color("segment:N", title="segment") if has_segment else alt.value(_LINE_COLOR)
    )

    base = alt.Chart(data)
    series_layers = []
    if has_ci:
        series_layers.append(
            base.mark_area(opacity=0.18).encode(
                x=x, y=alt.Y("ci_lower:Q", title=y_title), y2="ci_upper:Q", color=color
            )
        )
    series_layers.append(
        base.mark_line(point=True).encode(
            x=x,
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=color,
            tooltip=tooltip,
        )
    )
    # band and line share one colour scale (segment legend); alerts get their own below
    layers: list[Any] = [alt.layer(*series_layers)]

    if baseline is not None:
        layers.append(_hrule(_finite_number(baseline, parameter="baseline"), "baseline",
                             _BASELINE_COLOR, dashed=False))
    if threshold is not None:
        layers.append(_hrule(_finite_number(threshold, parameter="threshold"), "alert threshold",
                             _THRESHOLD_COLOR, dashed=True))
    if trend is not None:
        layers.extend(_trend_layers(trend, x=x))
    if change_point is not None:
        layers.append(_change_point_layer(change_point, x=x))
    if alerts is not None:
        layers.append(_alert_layer(alerts, x=x, y_title=y_title))

    subtitle = _direction_text(higher_is_better)
    chart = alt.layer(*layers).properties(
        title=alt.TitleParams(text=str(title if title is not None else metric), subtitle=subtitle)
    )
    if alerts is not None or has_segment:
        chart = chart.resolve_scale(color="independent")
    return apply_theme(chart)


def _hrule(value: float, label: str, color: str, *, dashed: bool) -> alt.Chart:
    frame = pd.DataFrame({"y": [value], "label": [label]})
    mark: dict[str, Any] = {"color": color, "strokeWidth": 1.5}
    if dashed:
        mark["strokeDash"] = [6, 4]
    return alt.Chart(frame).mark_rule(**mark).encode(
        y=alt.Y("y:Q"),
        tooltip=[alt.Tooltip("label:N", title="rule"), alt.Tooltip("y:Q", title="value")],
    )


def _trend_layers(trend: pd.DataFrame, *, x: alt.X) -> list[alt.Chart]:
    has_band = "lower" in getattr(trend, "columns", ()) and "upper" in trend.columns
    columns = ["timestamp", "fitted"] + (["lower", "upper"] if has_band else [])
    frame = _prepare(trend, columns, parameter="trend")[columns]
    base = alt.Chart(frame)
    layers = []
    if has_band:
        layers.append(
            base.mark_area(opacity=0.12, color=_TREND_COLOR).encode(
                x=x, y="lower:Q", y2="upper:Q"
            )
        )
    layers.append(
        base.mark_line(color=_TREND_COLOR, strokeDash=[2, 2], strokeWidth=1.5).encode(
            x=x, y="fitted:Q", tooltip=[alt.Tooltip("fitted:Q", title="trend", format=".4f")]
        )
    )
    return layers


def _change_point_layer(change_point: Any, *, x: alt.X) -> alt.Chart:
    try:
        stamp = pd.Timestamp(change_point)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"change_point must be a timestamp, got {change_point!r}", parameter="change_point"
        ) from exc
    frame = _prepare(pd.DataFrame({"timestamp": [stamp], "label": ["change point"]}),
                     ["timestamp", "label"], parameter="change_point")
    return alt.Chart(frame).mark_rule(color="#9467bd", strokeDash=[4, 2], strokeWidth=1.5).encode(
        x=x, tooltip=[alt.Tooltip("label:N", title="rule"),
                      alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC")]
    )


def _alert_layer(alerts: pd.DataFrame, *, x: alt.X, y_title: str) -> alt.Chart:
    columns = ["timestamp", "severity", "value"]
    frame = _prepare(alerts, columns, parameter="alerts")[columns]
    frame["severity"] = frame["severity"].astype(str)
    unknown = sorted(set(frame["severity"]) - set(SEVERITY_COLORS))
    if unknown:
        raise ValidationError(
            f"alerts.severity has unknown value(s) {unknown}; valid: {list(SEVERITY_COLORS)}",
            parameter="alerts",
        )
    return alt.Chart(frame).mark_point(filled=True, size=140, shape="diamond", opacity=1).encode(
        x=x,
        y=alt.Y("value:Q", title=y_title),
        color=alt.Color(
            "severity:N",
            title="alert",
            scale=alt.Scale(domain=list(SEVERITY_COLORS), range=list(SEVERITY_COLORS.values())),
        ),
        tooltip=[
            alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
            alt.Tooltip("severity:N"),
            alt.Tooltip("value:Q", format=".4f"),
        ],
    )


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
    chart = alt.Chart(data).mark_bar(color=_LINE_COLOR).encode(
        x=_timestamp_x(),
        y=alt.Y("sample_count:Q", title="samples"),
        tooltip=[
            alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
            alt.Tooltip("sample_count:Q", title="samples", format=","),
        ],
    ).properties(title=str(title), height=140)
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
    chart = alt.layer(*layers).properties(
        title=alt.TitleParams(
            text=str(title) if title is not None else f"{metric} by segment (worst first)",
            subtitle=_direction_text(higher_is_better),
        ),
        height=alt.Step(22),
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
    """Offline threshold explorer: a slider that recolours the points that would alert.

    Everything is computed by Vega-Lite in the browser (no kernel): the relative degradation
    of each point against ``baseline`` (in the direction given by ``higher_is_better``) is
    compared with the ``threshold`` param bound to a range input. Points above it turn red,
    a rule marks the metric level the threshold corresponds to, and a text mark says
    "N alerts would fire".

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp`` and ``value``.
    metric : str
        Metric name (y axis title).
    baseline : float
        Reference value; must be non-zero (degradation is relative to it).
    higher_is_better : bool, default True
        When True a drop below the baseline is a degradation, otherwise a rise.
    initial_threshold : float, default 0.05
        Starting slider value (relative degradation, 0.05 = 5 %).
    max_threshold : float, default 0.3
        Slider maximum.
    title : str, optional

    Returns
    -------
    altair.LayerChart
        Layers named ``threshold_points``, ``threshold_rule`` and ``alert_count`` (Vega mark
        names get a ``_marks`` suffix, so the SVG has ``g.alert_count_marks text``).

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
    ('threshold', 0.05)
    >>> spec["params"][0]["bind"]["input"]
    'range'
    """
    baseline_f = _finite_number(baseline, parameter="baseline")
    if baseline_f == 0:
        raise ValidationError("baseline must be non-zero for a relative threshold",
                              parameter="baseline")
    max_t = _finite_number(max_threshold, parameter="max_threshold")
    if max_t <= 0:
        raise ValidationError(f"max_threshold must be > 0, got {max_threshold!r}",
                              parameter="max_threshold")
    init_t = _finite_number(initial_threshold, parameter="initial_threshold")
    if not 0 <= init_t <= max_t:
        raise ValidationError(
            f"initial_threshold must be within [0, {max_t}], got {initial_threshold!r}",
            parameter="initial_threshold",
        )
    data = _prepare(df, ["timestamp", "value"])[["timestamp", "value"]]

    threshold = alt.param(
        name="threshold",
        value=init_t,
        bind=alt.binding_range(min=0, max=max_t, step=0.005, name="threshold"),
    )
    scale = abs(baseline_f)
    if higher_is_better:
        degradation = f"({baseline_f!r} - datum.value) / {scale!r}"
        limit = f"{baseline_f!r} - threshold * {scale!r}"
    else:
        degradation = f"(datum.value - {baseline_f!r}) / {scale!r}"
        limit = f"{baseline_f!r} + threshold * {scale!r}"

    y_title = str(metric)
    x = _timestamp_x()
    base = alt.Chart(data).transform_calculate(degradation=degradation).transform_calculate(
        status="datum.degradation > threshold ? 'would alert' : 'ok'",
        flag="datum.degradation > threshold ? 1 : 0",
    )
    line = alt.Chart(data).mark_line(color="#bbbbbb").encode(
        x=x, y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False))
    )
    points = base.mark_point(filled=True, size=70, opacity=1).encode(
        x=x,
        y=alt.Y("value:Q", title=y_title),
        color=alt.Color(
            "status:N",
            title="at this threshold",
            scale=alt.Scale(domain=["ok", "would alert"], range=[_OK_COLOR, _ALERT_COLOR]),
        ),
        tooltip=[
            alt.Tooltip("timestamp:T", title="time", format="%Y-%m-%d %H:%M UTC"),
            alt.Tooltip("value:Q", title=y_title, format=".4f"),
            alt.Tooltip("degradation:Q", title="relative degradation", format=".1%"),
            alt.Tooltip("status:N"),
        ],
    ).properties(name="threshold_points")
    baseline_rule = _hrule(baseline_f, "baseline", _BASELINE_COLOR, dashed=False)
    rule = alt.Chart(pd.DataFrame({"label": ["alert threshold"]})).transform_calculate(
        limit=limit
    ).mark_rule(color=_THRESHOLD_COLOR, strokeDash=[6, 4], strokeWidth=1.5).encode(
        y=alt.Y("limit:Q"),
        tooltip=[alt.Tooltip("label:N", title="rule"), alt.Tooltip("limit:Q", format=".4f")],
    ).properties(name="threshold_rule")
    count = base.transform_aggregate(n="sum(flag)").transform_calculate(
        label="datum.n + (datum.n === 1 ? ' alert would fire' : ' alerts would fire')"
        " + ' at threshold ' + format(threshold, '.1%')"
    ).mark_text(align="left", baseline="top", fontSize=13, fontWeight="bold",
                color="#333333").encode(
        x=alt.value(6), y=alt.value(6), text="label:N"
    ).properties(name="alert_count")

    chart = alt.layer(line, baseline_rule, rule, points, count).add_params(threshold).properties(
        title=alt.TitleParams(
            text=str(title) if title is not None else f"{metric}: threshold explorer",
            subtitle=f"relative degradation vs baseline {baseline_f:g} "
            f"({_direction_text(higher_is_better)})",
        ),
        usermeta={"embedOptions": {"renderer": "svg", "actions": False}},
    )
    return apply_theme(chart)


# --------------------------------------------------------------------------------------------
# rendering / saving
# --------------------------------------------------------------------------------------------
@cache
def _vl_version() -> str | None:
    import vl_convert as vlc

    wanted = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    supported = {"v" + v.replace(".", "_") for v in vlc.get_vegalite_versions()}
    return wanted if wanted in supported else None


def _spec(chart: Any) -> dict[str, Any]:
    if isinstance(chart, dict):
        return chart
    to_dict = getattr(chart, "to_dict", None)
    if to_dict is None:
        raise ValidationError(
            f"chart must be an altair chart or a Vega-Lite dict, got {type(chart).__name__}",
            parameter="chart",
        )
    return to_dict()


def chart_to_svg(chart: Any) -> str:
    """Render ``chart`` to an SVG string in-process with vl-convert (no browser).

    External data URLs are refused: perfkit charts carry their data inline.

    Examples
    --------
    >>> import altair as alt, pandas as pd
    >>> svg = chart_to_svg(alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x"))
    >>> svg.startswith("<svg")
    True
    """
    import vl_convert as vlc

    return vlc.vegalite_to_svg(_spec(chart), vl_version=_vl_version(), allowed_base_urls=[])


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
