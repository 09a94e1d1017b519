"""The demo's weekly review HTML in real headless Chromium, network disabled.

Screenshots of the report and of the explorer at each checked position are kept under the
pytest temporary directory (their paths are printed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import explorer_alert_count

from perfkit.demo import run_demo
from perfkit.report import ExitCode
from perfkit.report.weekly import run_weekly_review

XSS = "<script>alert(1)</script>"
MARK_LEGEND = {"daily value (all segments)", "95 % interval", "baseline", "alert threshold", "trend band",
               "trend fit", "change point", "minor", "moderate", "critical"}

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("weekly-browser")
    demo = run_demo(out, weeks=3, rows=(150, 250), model=XSS, report=False)
    result = run_weekly_review(demo.store_url, out / "reports", config_path=demo.config_path, cell_timeout=300)
    assert result.exit_code == ExitCode.OK
    return demo, result.html_path


@pytest.fixture
def page(demo, browser_page):
    page = browser_page.page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(demo[1].as_uri())
    page.wait_for_load_state("load")
    charts = page.locator(".perfkit-chart")
    page.wait_for_function(
        "n => document.querySelectorAll('.perfkit-chart[data-perfkit-state=interactive]').length === n",
        arg=charts.count(), timeout=60_000,
    )
    yield page
    browser_page.assert_clean()


def _shot(page, tmp_path_factory, name: str, locator=None) -> Path:
    path = tmp_path_factory.getbasetemp() / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    (locator or page).screenshot(path=str(path), **({} if locator else {"full_page": True}))
    print(f"screenshot: {path}")
    return path


def _translate(transform: str) -> tuple[float, float]:
    x, y = re.match(r"translate\(([-\d.e]+),\s*([-\d.e]+)\)", transform).groups()
    return float(x), float(y)


def test_weekly_review_offline_in_chromium(page, tmp_path_factory):
    charts = page.locator(".perfkit-chart")
    assert charts.count() >= 5  # 3 trend charts (+ changed metrics), volume, segments, explorer
    for chart_id in charts.evaluate_all("els => els.map(e => e.id)"):
        marks = page.locator(f"#{chart_id} .perfkit-chart-interactive svg .role-mark")
        assert marks.count() > 0, f"chart {chart_id} drew no marks"
    body = page.inner_text("body")
    order = [body.index(h) for h in ("In short", "Is something wrong?", "Since when?", "Where?", "Why?",
                                     "What was done?")]
    assert order == sorted(order)
    # the model name is shown as text (headings, tables), never run
    assert XSS in page.locator("h2", has_text="Model").first.inner_text()
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert "No data for this period" not in body
    _shot(page, tmp_path_factory, "weekly_review")


def test_trend_charts_legend_markers_and_tooltips(page, tmp_path_factory):
    trend_charts = [c for c in page.locator(".perfkit-chart").all()
                    if c.locator(".perfkit-chart-interactive g.series_points_marks").count()]
    assert len(trend_charts) >= 3
    markers_seen = 0
    for chart in trend_charts:
        labels = set(chart.locator(".perfkit-chart-interactive g.role-legend-label text").evaluate_all(
            "els => els.map(e => e.textContent)"))
        title = chart.locator(".perfkit-chart-interactive g.role-title-text text").first.text_content()
        metric = title.split(" — ")[0]
        # thresholded metrics draw every mark; a metric without a threshold has no rule and no alerts
        expected = MARK_LEGEND if metric in ("accuracy", "f1_macro", "roc_auc") else \
            MARK_LEGEND - {"alert threshold", "minor", "moderate", "critical"}
        assert expected <= labels, f"{metric}: legend misses {expected - labels}"
        points = [_translate(t) for t in chart.locator(
            ".perfkit-chart-interactive g.series_points_marks path").evaluate_all(
            "els => els.map(e => e.getAttribute('transform'))")]
        markers = [_translate(t) for t in chart.locator(
            ".perfkit-chart-interactive g.alert_markers_marks path").evaluate_all(
            "els => els.map(e => e.getAttribute('transform'))")]
        xs = {round(x, 6) for x, _ in points}
        for x, y in markers:  # exactly on a point: same x (and y), never after the last point
            assert round(x, 6) in xs and (x, y) in points
            assert round(x, 6) <= max(xs)
        markers_seen += len(markers)
        # a tooltip on every point: hover each one
        chart.scroll_into_view_if_needed()
        rects = chart.locator(".perfkit-chart-interactive g.series_points_marks path").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })")
        assert len(rects) == len(points)
        for x, y in rects:
            page.mouse.move(x, y)
            page.wait_for_function("() => { const t = document.querySelector('#vg-tooltip-element');"
                                   " return t && t.classList.contains('visible'); }", timeout=5_000)
            text = page.locator("#vg-tooltip-element").inner_text()
            for field in ("time", "95 % interval", "n (rows)", "segment", "alert"):
                assert field in text, f"tooltip {text!r} misses {field}"
            page.mouse.move(0, 0)
            page.wait_for_function("() => { const t = document.querySelector('#vg-tooltip-element');"
                                   " return !t || !t.classList.contains('visible'); }", timeout=5_000)
    assert markers_seen > 0
    _shot(page, tmp_path_factory, "trend_chart", trend_charts[0])


POSITIONS = (1.0, 3.0, 5.0, 10.0, 20.0)  # slider positions, percent


def _explorer_state(page) -> dict:
    return page.evaluate("() => window.perfkitExplorerLast")


def test_explorer_equals_replay_for_every_metric(page, demo, tmp_path_factory):
    """For each monitored metric and five slider positions the page's count and red points are
    exactly the alerts ``replay`` fires in Python (explore_thresholds: same tests, family, cooldown)."""
    from perfkit.config import load_config
    from perfkit.widgets import explore_thresholds

    result = demo[0]
    cfg = load_config(result.config_path)
    active = [m for m in cfg.metrics_to_track if m in cfg.detection.thresholds]
    explorer = page.locator(".perfkit-chart", has=page.locator("g.threshold_points_marks"))
    assert explorer.count() == 1
    select = page.locator("select[name=explorer_metric]")
    options = select.locator("option").evaluate_all("els => els.map(e => e.value)")
    assert options == list(cfg.metrics_to_track)  # every monitored metric
    slider = page.locator("input[type=range][name=threshold]")
    assert float(slider.get_attribute("max")) >= max(POSITIONS)
    label_text = page.locator(".perfkit-chart-interactive label", has=slider).inner_text() \
        if page.locator(".perfkit-chart-interactive label", has=slider).count() else \
        explorer.locator(".vega-bindings").inner_text()
    assert "%" in label_text  # the slider is in percent, like the label
    compared = 0
    for metric in options:
        select.select_option(metric)
        page.wait_for_function("m => window.perfkitExplorerLast && window.perfkitExplorerLast.metric === m",
                               arg=metric, timeout=10_000)
        ticks_before = None
        for pct in POSITIONS:
            slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
                            pct)
            page.wait_for_function(
                "t => window.perfkitExplorerLast && Math.abs(window.perfkitExplorerLast.threshold - t) < 1e-12",
                arg=pct / 100, timeout=10_000)
            page.wait_for_function(
                "s => { const t = document.querySelector('.perfkit-chart-interactive g.alert_count_marks text');"
                " return t && t.textContent.includes(s); }", arg=f"for {metric} at a threshold of {pct:.1f} %",
                timeout=10_000)
            ref = explore_thresholds(result.store_url, model=XSS, config=result.config_path,
                                     metrics=list(dict.fromkeys([*active, metric])),
                                     thresholds={metric: pct / 100})
            ref = ref[(ref["metric"] == metric) & (ref["alert_type"] == "performance_degradation")]
            fires = ref[ref["status"] == "fires"]
            state = _explorer_state(page)
            assert explorer_alert_count(page) == len(fires) == state["count"], (metric, pct)
            expected = {f"{b}|{s}" for b, s in zip(fires["batch_id"], fires["segment"], strict=True)}
            assert set(state["fire"]) == expected, (metric, pct)
            if cfg.detection.thresholds.get(metric) == pct / 100:  # the configured threshold: the tracker's alerts
                from perfkit.store import Store

                with Store(result.store_url) as store:
                    stored = store.alerts(XSS)
                stored = stored[(stored["metric"] == metric) & (stored["alert_type"] == "performance_degradation")]
                assert state["count"] == int((stored["status"] != "suppressed").sum()), (metric, pct)
            suppressed = ref[ref["status"] == "suppressed"]
            assert set(state["suppressed"]) == {f"{b}|{s}" for b, s in zip(suppressed["batch_id"],
                                                                            suppressed["segment"], strict=True)}
            page.wait_for_function(
                "n => Array.from(document.querySelectorAll("
                "'.perfkit-chart-interactive g.threshold_points_marks path'))"
                ".filter(p => p.getAttribute('fill') === '#d62728').length === n", arg=len(fires), timeout=10_000)
            # the y axis stays put while the slider moves
            ticks = explorer.locator(".perfkit-chart-interactive g.role-axis-label text").evaluate_all(
                "els => els.map(e => e.textContent)")
            assert ticks_before is None or ticks == ticks_before
            ticks_before = ticks
            # the "N alerts would fire" label is above every point, never over them
            label_box = explorer.locator(".perfkit-chart-interactive g.alert_count_marks text").bounding_box()
            tops = explorer.locator(".perfkit-chart-interactive g.threshold_points_marks path").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().top + window.scrollY)")
            page_label_bottom = label_box["y"] + label_box["height"] + page.evaluate("() => window.scrollY")
            assert tops and page_label_bottom <= min(tops)
            compared += 1
        _shot(page, tmp_path_factory, f"explorer_{metric}", explorer)
    assert compared == len(options) * len(POSITIONS)


# ------------------------------------------------------------------ before the labels arrive
ESTIMATE_LEGEND = {"estimate, labels pending", "estimate 95 % interval"}


@pytest.fixture(scope="module")
def late_review(tmp_path_factory):
    """Weekly review of a history whose last batches wait for their labels."""
    from late_history import AS_OF, build_history

    out = tmp_path_factory.mktemp("weekly-late")
    tracker = build_history(out / "late.db", out / "late.yaml")
    tracker.close()
    result = run_weekly_review(out / "late.db", out / "reports", config_path=out / "late.yaml", as_of=AS_OF,
                               cell_timeout=300)
    assert result.exit_code == ExitCode.OK
    return result.html_path


def test_estimate_line_legend_and_tooltips(late_review, browser_page, tmp_path_factory):
    """Pending batches are drawn as a dashed estimate line with its band; the legend names
    both; every estimate point has a tooltip saying the labels are pending."""
    page = browser_page.page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(late_review.as_uri())
    page.wait_for_load_state("load")
    charts = page.locator(".perfkit-chart")
    page.wait_for_function(
        "n => document.querySelectorAll('.perfkit-chart[data-perfkit-state=interactive]').length === n",
        arg=charts.count(), timeout=60_000)
    body = page.inner_text("body")
    assert "Before the labels arrive" in body and "Labels pending: 3 batches" in body
    assert "concept drift suspected" in body
    trend_charts = [c for c in charts.all()
                    if c.locator(".perfkit-chart-interactive g.estimate_points_marks").count()]
    assert len(trend_charts) >= 2
    for chart in trend_charts:
        labels = set(chart.locator(".perfkit-chart-interactive g.role-legend-label text").evaluate_all(
            "els => els.map(e => e.textContent)"))
        assert (ESTIMATE_LEGEND | {"batch value", "95 % interval", "baseline"}) <= labels, labels
        # the estimate line is dashed, in the legend too
        dashes = chart.locator(".perfkit-chart-interactive svg path").evaluate_all(
            "els => els.map(e => e.getAttribute('stroke-dasharray')).filter(d => d)")
        assert "5,3" in {d.replace(" ", "") for d in dashes}
        points = chart.locator(".perfkit-chart-interactive g.estimate_points_marks path")
        assert points.count() == 3  # the three pending batches
        chart.scroll_into_view_if_needed()
        rects = points.evaluate_all("els => els.map(e => { const r = e.getBoundingClientRect();"
                                    " return [r.x + r.width / 2, r.y + r.height / 2]; })")
        for x, y in rects:
            page.mouse.move(x, y)
            page.wait_for_function("() => { const t = document.querySelector('#vg-tooltip-element');"
                                   " return t && t.classList.contains('visible'); }", timeout=5_000)
            text = page.locator("#vg-tooltip-element").inner_text()
            for field in ("time", "estimate 95 % interval", "n (rows)", "pending (label-free estimate)"):
                assert field in text, f"tooltip {text!r} misses {field}"
            page.mouse.move(0, 0)
            page.wait_for_function("() => { const t = document.querySelector('#vg-tooltip-element');"
                                   " return !t || !t.classList.contains('visible'); }", timeout=5_000)
    _shot(page, tmp_path_factory, "estimate_chart", trend_charts[0])
    browser_page.assert_clean()
