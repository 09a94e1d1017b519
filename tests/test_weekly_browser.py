"""The demo's weekly review HTML in real headless Chromium, network disabled."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import explorer_alert_count

from perfkit.demo import run_demo
from perfkit.report import ExitCode
from perfkit.report.weekly import run_weekly_review

XSS = "<script>alert(1)</script>"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def weekly_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weekly-browser")
    demo = run_demo(out, weeks=3, rows=(150, 250), model=XSS, report=False)
    result = run_weekly_review(demo.store_url, out / "reports", config_path=demo.config_path, cell_timeout=300)
    assert result.exit_code == ExitCode.OK
    return result.html_path


def test_weekly_review_offline_in_chromium(weekly_html, browser_page):
    page = browser_page.page
    page.goto(weekly_html.as_uri())
    page.wait_for_load_state("load")

    charts = page.locator(".perfkit-chart")
    n = charts.count()
    assert n >= 5  # 3 trend charts, volume, segments, explorer
    page.wait_for_function(
        "n => document.querySelectorAll('.perfkit-chart[data-perfkit-state=interactive]').length === n",
        arg=n, timeout=60_000,
    )
    for chart_id in charts.evaluate_all("els => els.map(e => e.id)"):
        marks = page.locator(f"#{chart_id} .perfkit-chart-interactive svg .role-mark")
        assert marks.count() > 0, f"chart {chart_id} drew no marks"

    slider = page.locator("input[type=range][name=threshold]")
    assert slider.count() == 1
    before = explorer_alert_count(page)
    assert before > 0  # the degraded days exceed the configured threshold
    slider.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        float(slider.get_attribute("max")),
    )
    page.wait_for_function(
        "before => { const t = document.querySelector("
        "'.perfkit-chart-interactive g.alert_count_marks text');"
        " return t && !t.textContent.startsWith(before + ' '); }",
        arg=before, timeout=10_000,
    )
    assert explorer_alert_count(page) < before

    # the model name is shown as text (headings, tables), never run
    assert XSS in page.locator("h2", has_text="Model").first.inner_text()
    assert XSS in page.locator("table.perfkit-table").first.inner_text() or XSS in page.inner_text("body")
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert "No data for this period" not in page.inner_text("body")
    browser_page.assert_clean()
