"""End to end: papermill run of the smoke report, then the HTML in offline headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import explorer_alert_count

from perfkit.report import ExitCode, run_notebook

SMOKE = Path(__file__).parent / "data" / "report_smoke.ipynb"
XSS = "<script>alert(1)</script>"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = run_notebook(SMOKE, out, {"model_name": XSS, "n_alerts": 1}, cell_timeout=120)
    assert result.exit_code == ExitCode.OK
    assert result.summary["model_name"] == XSS
    return result.html_path


def test_report_renders_offline_and_slider_updates(smoke_report, browser_page):
    page = browser_page.page
    page.goto(smoke_report.as_uri())
    page.wait_for_load_state("load")

    charts = page.locator(".perfkit-chart")
    assert charts.count() == 2
    ids = charts.evaluate_all("els => els.map(e => e.id)")
    assert len(set(ids)) == 2
    # every chart upgrades to the interactive view: vega-embed is inlined, nothing is fetched
    page.wait_for_function(
        "n => document.querySelectorAll('.perfkit-chart[data-perfkit-state=interactive]')"
        ".length === n",
        arg=2,
        timeout=30_000,
    )
    for chart_id in ids:
        marks = page.locator(f"#{chart_id} .perfkit-chart-interactive svg .role-mark")
        assert marks.count() > 0, f"chart {chart_id} drew no marks"
        assert page.locator(f"#{chart_id} .perfkit-chart-static").is_hidden()

    before = explorer_alert_count(page)
    slider = page.locator("input[type=range][name=threshold]")
    assert slider.count() == 1
    value = float(slider.get_attribute("max"))  # the most tolerant threshold
    slider.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        value,
    )
    page.wait_for_function(
        "before => { const t = document.querySelector("
        "'.perfkit-chart-interactive g.alert_count_marks text');"
        " return t && !t.textContent.startsWith(before + ' '); }",
        arg=before,
        timeout=10_000,
    )
    after = explorer_alert_count(page)
    assert after != before and after < before

    # the user string from the parameters is shown as text, never executed
    heading = page.locator("h2", has_text="Weekly review")
    assert XSS in heading.inner_text()
    assert page.locator("script", has_text="alert(1)").count() == 0
    browser_page.assert_clean()
    assert browser_page.requests, "the page itself should have been requested"


def test_static_svg_is_shown_without_javascript(smoke_report, browser_page):
    """Scripts blocked (like an untrusted notebook): the static SVG is still there."""
    context = browser_page.page.context
    page = context.browser.new_context(offline=True, java_script_enabled=False).new_page()
    try:
        page.goto(smoke_report.as_uri())
        static = page.locator(".perfkit-chart-static svg")
        assert static.count() == 2
        for i in range(2):
            assert static.nth(i).is_visible()
            assert static.nth(i).locator("path").count() > 0
    finally:
        page.context.close()
    browser_page.assert_clean()
