"""Chart builders, save_chart and the notebook display, tested on specs and vl-convert output."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from perfkit.exceptions import ValidationError
from perfkit.report import (
    SEVERITY_COLORS,
    chart_html,
    chart_mimebundle,
    chart_to_svg,
    escape_markdown,
    explorer_chart,
    format_markdown,
    metric_chart,
    save_chart,
    segment_chart,
    threshold_explorer_chart,
    volume_chart,
)
from perfkit.report.charts import THEME_FONT

vl_convert = pytest.importorskip("vl_convert")

XSS = "<script>alert(1)</script>"


@pytest.fixture
def series() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2026-01-05", periods=20, freq="W-MON", tz="Europe/Berlin")
    value = 0.9 - np.linspace(0, 0.15, 20) + rng.normal(0, 0.01, 20)
    return pd.DataFrame(
        {"timestamp": ts, "value": value, "ci_lower": value - 0.02, "ci_upper": value + 0.02}
    )


def _walk_layers(spec: dict):
    yield spec
    for child in spec.get("layer", []):
        yield from _walk_layers(child)


def _marks(spec: dict) -> list[str]:
    out = []
    for node in _walk_layers(spec):
        mark = node.get("mark")
        if mark is not None:
            out.append(mark if isinstance(mark, str) else mark["type"])
    return out


def _rows_with(spec: dict, column: str) -> list[dict]:
    (rows,) = [rows for rows in spec["datasets"].values() if rows and column in rows[0]]
    return rows


def _scenegraph_marks(node, name: str) -> list[dict]:
    found = []
    if isinstance(node, dict):
        if node.get("name") == name and "items" in node:
            found.extend(node["items"])
        for value in node.values():
            found.extend(_scenegraph_marks(value, name))
    elif isinstance(node, list):
        for value in node:
            found.extend(_scenegraph_marks(value, name))
    return found


# ------------------------------------------------------------------------------ metric_chart
def _full_chart(series, **kw):
    alerts = series.iloc[-3:][["timestamp", "value"]].assign(severity=["minor", "moderate", "critical"])
    alerts["timestamp"] = alerts["timestamp"] + pd.Timedelta(hours=5)  # raised after the point's time
    alerts.loc[alerts.index[-1], "value"] = 0.1  # an alert's own value never places it
    trend = pd.DataFrame(
        {"timestamp": series["timestamp"], "fitted": np.linspace(0.9, 0.75, 20)}
    ).assign(lower=lambda d: d.fitted - 0.01, upper=lambda d: d.fitted + 0.01)
    return metric_chart(
        series, metric="accuracy", baseline=0.9, threshold=0.85, alerts=alerts, trend=trend,
        change_point=series["timestamp"].iloc[10], **kw,
    )


def _legend_labels(spec: dict) -> set[str]:
    labels = set()
    for node in _walk_layers(spec):
        color = node.get("encoding", {}).get("color", {})
        if isinstance(color, dict) and color.get("legend", {}) is not None and "scale" in color:
            labels.update(color["scale"].get("domain", []))
    return labels


def test_metric_chart_layers_rules_and_legend_for_every_mark(series):
    spec = _full_chart(series, title=XSS).to_dict()
    assert spec["config"]["font"] == THEME_FONT
    assert spec["title"]["text"] == XSS  # travels as a spec string, Vega renders it as text
    assert spec["resolve"]["scale"]["color"] == "independent"
    marks = _marks(spec)
    assert marks.count("area") == 2  # CI band + trend band
    assert marks.count("rule") == 3  # baseline, threshold, change point
    assert "line" in marks and "point" in marks
    assert _legend_labels(spec) == {"95 % interval", "value", "baseline", "alert threshold", "trend band",
                                    "trend fit", "change point", "minor", "moderate", "critical"}

    rules = [n for n in _walk_layers(spec) if n.get("mark", {}).get("type") == "rule"]
    by_value = {}
    for rule in rules:
        rows = spec["datasets"][rule["data"]["name"]]
        if "y" in rule["encoding"]:
            by_value[rows[0]["label"]] = (rows[0]["y"], rule["mark"].get("strokeDash"))
        else:
            assert rule["encoding"]["x"]["field"] == "timestamp"
    assert by_value["baseline"] == (0.9, None)
    assert by_value["alert threshold"][0] == 0.85 and by_value["alert threshold"][1]  # dashed

    alert_layer = spec["layer"][-1]
    assert alert_layer["name"] == "alert_markers"
    color = alert_layer["encoding"]["color"]
    assert color["field"] == "alert_severity"
    assert color["scale"] == {"domain": ["minor", "moderate", "critical"],
                              "range": ["#f2c744", "#f28e2b", "#d62728"]}
    assert list(SEVERITY_COLORS.values()) == color["scale"]["range"]
    first = _rows_with(spec, "ci_lower")[0]["timestamp"]
    assert first.endswith("+00:00")  # serialised with its offset, drawn on a UTC scale
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "utc"


def test_alert_markers_sit_exactly_on_their_points(series):
    spec = _full_chart(series).to_dict()
    scenegraph = vl_convert.vegalite_to_scenegraph(spec)
    points = _scenegraph_marks(scenegraph, "series_points_marks")
    markers = _scenegraph_marks(scenegraph, "alert_markers_marks")
    assert len(points) == len(series) and len(markers) == 3
    xy = {(p["x"], p["y"]) for p in points}
    for m in markers:
        assert (m["x"], m["y"]) in xy  # same x and y as a point, never beside it
    assert max(m["x"] for m in markers) <= max(p["x"] for p in points)  # none after the last point


def test_tooltips_on_every_point(series):
    df = series.assign(n=1000, segment="all", alert="none")
    spec = metric_chart(df, metric="accuracy").to_dict()
    (points,) = [n for n in _walk_layers(spec) if n.get("name") == "series_points"]
    titles = [t.get("title", t["field"]) for t in points["encoding"]["tooltip"]]
    assert titles == ["time", "accuracy", "95 % interval", "n (rows)", "segment", "alert"]
    rows = _rows_with(spec, "interval")
    assert len(rows) == len(series) and all(r["interval"].startswith("[") for r in rows)


@pytest.mark.parametrize("metric, values, bound", [
    ("accuracy", [0.97, 0.99, 0.995], ("max", 1.0)),
    ("log_loss", [0.02, 0.01, 0.03], ("min", 0.0)),
])
def test_y_axis_is_clipped_to_the_metric_bounds(metric, values, bound):
    df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=3, tz="UTC"), "value": values,
                       "ci_lower": [v - 0.05 for v in values], "ci_upper": [v + 0.05 for v in values]})
    spec = metric_chart(df, metric=metric, baseline=values[0]).to_dict()
    lo, hi = spec["layer"][0]["encoding"]["y"]["scale"]["domain"]
    if bound[0] == "max":
        assert hi == bound[1] and lo < min(values)
    else:
        assert lo == bound[1] and hi > max(values)
    svg = chart_to_svg(spec)
    ticks = [float(t) for t in re.findall(r">(-?\d+\.\d+)</text>", svg)]
    assert ticks and (max(ticks) <= 1.0 if bound[0] == "max" else min(ticks) >= 0.0)


def test_metric_chart_is_new_object_and_input_untouched(series):
    before = series.copy()
    a = metric_chart(series, metric="acc")
    b = metric_chart(series, metric="acc")
    assert a is not b
    a.title = "changed"
    assert b.to_dict()["title"]["text"] == "acc"
    pd.testing.assert_frame_equal(series, before)


def test_metric_chart_segments_and_minimal_frame():
    ts = pd.date_range("2026-01-01", periods=4, freq="D")  # naive: taken as UTC
    df = pd.DataFrame({"timestamp": list(ts) * 2, "value": np.arange(8) / 10,
                       "segment": ["eu"] * 4 + ["us"] * 4})
    spec = metric_chart(df, metric="f1").to_dict()
    line = spec["layer"][0]
    assert line["encoding"]["color"]["field"] == "segment"
    rows = _rows_with(spec, "segment")
    assert rows[0]["timestamp"].endswith("+00:00")
    assert "area" not in _marks(spec)


def test_metric_chart_validation(series):
    with pytest.raises(ValidationError, match="missing column") as info:
        metric_chart(series.drop(columns="value"), metric="acc")
    assert info.value.parameter == "df"
    bad = series.iloc[:1][["timestamp", "value"]].assign(severity="huge")
    with pytest.raises(ValidationError, match="huge") as info:
        metric_chart(series, metric="acc", alerts=bad)
    assert info.value.parameter == "alerts"
    with pytest.raises(ValidationError) as info:
        metric_chart(series, metric="acc", baseline=float("nan"))
    assert info.value.parameter == "baseline"
    with pytest.raises(ValidationError):
        metric_chart([1, 2], metric="acc")


# ------------------------------------------------------------------------------ other builders
def test_volume_chart(series):
    spec = volume_chart(series.assign(sample_count=range(20))).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["y"]["field"] == "sample_count"
    assert spec["config"]["font"] == THEME_FONT


@pytest.mark.parametrize(("higher_is_better", "expected"), [(True, ["b", "c", "a"]),
                                                            (False, ["a", "c", "b"])])
def test_segment_chart_latest_value_worst_first(higher_is_better, expected):
    ts = pd.to_datetime(["2026-01-01", "2026-01-08"], utc=True)
    df = pd.DataFrame({
        "timestamp": list(ts) * 3,
        "segment": ["a", "a", "b", "b", "c", "c"],
        "value": [0.1, 0.9, 0.99, 0.7, 0.5, 0.8],  # latest: a=.9, b=.7, c=.8
    }).assign(ci_lower=lambda d: d.value - 0.05, ci_upper=lambda d: d.value + 0.05)
    spec = segment_chart(df, metric="acc", higher_is_better=higher_is_better).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["sort"] == expected
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["point", "errorbar"]
    rows = _rows_with(spec, "ci_lower")
    assert sorted(r["value"] for r in rows) == [0.7, 0.8, 0.9]


# ------------------------------------------------------------------------------ threshold explorer
def test_threshold_explorer_spec(series):
    spec = threshold_explorer_chart(series, metric="acc", baseline=0.9,
                                    initial_threshold=0.1, max_threshold=0.25).to_dict()
    threshold, metric = spec["params"]
    # the slider is in percent, like every label of the explorer
    assert threshold["name"] == "threshold" and threshold["value"] == 10.0
    assert threshold["bind"]["input"] == "range" and threshold["bind"]["max"] == 25.0
    assert "%" in threshold["bind"]["name"]
    assert metric["name"] == "explorer_metric" and metric["bind"]["options"] == ["acc"]
    names = [layer.get("name") for layer in spec["layer"]]
    assert {"threshold_points", "threshold_rule", "alert_count"} <= set(names)
    count = spec["layer"][names.index("alert_count")]
    assert count["mark"]["type"] == "text"
    assert any("aggregate" in t for t in count["transform"])
    assert spec["usermeta"]["embedOptions"]["renderer"] == "svg"


def _two_metrics(series):
    loss = series.assign(metric="log_loss", value=0.3 + (0.9 - series["value"]) * 2)
    return pd.concat([series.assign(metric="accuracy"), loss])[["timestamp", "metric", "value"]]


METRICS = {"accuracy": {"baseline": 0.9, "higher_is_better": True},
           "log_loss": {"baseline": 0.3, "higher_is_better": False}}


@pytest.mark.parametrize("metric", ["accuracy", "log_loss"])
def test_explorer_alert_count_matches_pandas_for_each_metric(series, metric):
    df = _two_metrics(series)
    chart = explorer_chart(df, metrics=METRICS)
    rows = df[df["metric"] == metric]
    b, hib = METRICS[metric]["baseline"], METRICS[metric]["higher_is_better"]
    degradation = (1 if hib else -1) * (b - rows["value"]) / abs(b) * 100
    seen = set()
    for threshold in (2.0, 10.0):
        spec = chart.to_dict()
        spec["params"][0]["value"] = threshold
        spec["params"][1]["value"] = metric
        scenegraph = vl_convert.vegalite_to_scenegraph(spec)
        points = _scenegraph_marks(scenegraph, "threshold_points_marks")
        assert len(points) == len(rows)
        red = sum(1 for item in points if item["fill"] == "#d62728")
        expected = int((degradation > threshold).sum())
        assert red == expected
        (text,) = _scenegraph_marks(scenegraph, "alert_count_marks")
        assert re.match(rf"{expected} alerts? would fire for {metric} at a threshold of {threshold:.1f} %",
                        text["text"])
        assert text["y"] < 0  # the label sits above the plot, never over the points
        seen.add(expected)
    assert len(seen) == 2, "the two thresholds should give different counts"


def test_explorer_axis_does_not_move_with_the_slider(series):
    spec = explorer_chart(_two_metrics(series), metrics=METRICS).to_dict()
    positions = []
    for threshold in (0.0, 30.0):
        spec["params"][0]["value"] = threshold
        scenegraph = vl_convert.vegalite_to_scenegraph(spec)
        positions.append([(p["x"], p["y"]) for p in _scenegraph_marks(scenegraph, "threshold_points_marks")])
    assert positions[0] == positions[1]


def test_threshold_explorer_validation(series):
    with pytest.raises(ValidationError) as info:
        threshold_explorer_chart(series, metric="acc", baseline=0)
    assert info.value.parameter == "baseline"
    with pytest.raises(ValidationError) as info:
        threshold_explorer_chart(series, metric="acc", baseline=0.9, initial_threshold=0.5)
    assert info.value.parameter == "initial_threshold"
    with pytest.raises(ValidationError) as info:
        explorer_chart(_two_metrics(series), metrics=METRICS, initial_metric="auc")
    assert info.value.parameter == "initial_metric"


# ------------------------------------------------------------------------------ save_chart
def _external_refs(html: str) -> list[str]:
    soup = BeautifulSoup(html, "html.parser")
    refs = [tag.get("src") for tag in soup.find_all(["script", "img", "iframe"])]
    refs += [tag.get("href") for tag in soup.find_all("link")]
    return [r for r in refs if r and re.match(r"^(https?:)?//", r.strip())]


def test_save_chart_formats(series, tmp_path):
    chart = metric_chart(series, metric="acc", baseline=0.9, title=XSS)
    png = save_chart(chart, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = save_chart(chart, tmp_path / "c.svg").read_text()
    assert svg.startswith("<svg") and "<path" in svg
    assert XSS not in svg and "&lt;script&gt;" in svg
    html = save_chart(chart, tmp_path / "c.html").read_text()
    assert "vegaEmbed" in html and _external_refs(html) == []
    spec = json.loads(save_chart(chart, tmp_path / "c.json").read_text())
    assert spec == json.loads(json.dumps(chart.to_dict()))


def test_save_chart_unknown_extension(series, tmp_path):
    with pytest.raises(ValidationError, match="output_path") as info:
        save_chart(metric_chart(series, metric="acc"), tmp_path / "c.pdf")
    assert info.value.parameter == "output_path"


# ------------------------------------------------------------------------------ display
def test_chart_mimebundle_static_svg_and_guarded_upgrade(series):
    chart = metric_chart(series, metric="acc", title="</script><script>alert(1)</script>")
    bundle = chart_mimebundle(chart)
    html = bundle["text/html"]
    soup = BeautifulSoup(html, "html.parser")
    (root,) = soup.select("div.perfkit-chart")
    assert root.select_one(".perfkit-chart-static svg") is not None
    scripts = soup.find_all("script")
    assert len(scripts) == 1 and not scripts[0].get("src")
    assert 'typeof window.vegaEmbed !== "function"' in scripts[0].string
    assert "alert(1)</script>" not in html  # escaped in SVG text and in the JSON spec
    assert _external_refs(html) == []
    assert bundle["text/plain"].startswith("<perfkit chart")
    # ids are unique per output
    other = BeautifulSoup(chart_html(chart), "html.parser").select_one("div.perfkit-chart")
    assert other["id"] != root["id"]
    with pytest.raises(ValidationError):
        chart_html(chart, chart_id='x" onload="alert(1)')


def test_markdown_escaping():
    text = format_markdown("## Model {m}", m=XSS + " *bold* [x](http://a)")
    assert "<script>" not in text and "\\*bold\\*" in text and "\\[x\\]" in text
    assert escape_markdown("a&b") == "a&amp;b"
