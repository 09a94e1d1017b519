"""The weekly review: its data layer, and the template executed by papermill."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from perfkit.demo import run_demo
from perfkit.exceptions import ValidationError
from perfkit.report import ExitCode
from perfkit.report.weekly import run_weekly_review, table_html, template_path, weekly_context
from perfkit.store import Store

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """A small demo history (2 weeks, degradation in week 2) of a model named XSS."""
    out = tmp_path_factory.mktemp("weekly")
    result = run_demo(out, weeks=2, rows=(150, 250), model=XSS, report=False)
    return result.output_dir


def _store(history: Path) -> str:
    return str(history / "demo.db")


def _config(history: Path) -> str:
    return str(history / "demo_config.yaml")


def test_template_is_found_and_parameterized():
    import papermill

    params = papermill.inspect_notebook(str(template_path()))
    assert {"store_url", "config_path", "model", "segment", "as_of", "days", "output_dir",
            "summary_path", "show_widgets"} <= set(params)


def test_table_html_escapes_cells_and_headers():
    frame = pd.DataFrame({XSS: [XSS], "value": [0.25]})
    out = table_html(frame, caption=XSS)
    assert "<script>" not in out
    assert out.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3
    assert "0.2500" in out


def test_weekly_context_missing_and_empty_store(tmp_path):
    missing = weekly_context(tmp_path / "nope.db")
    assert missing.empty and missing.models == () and missing.to_dict()["alerts"] == 0
    Store(tmp_path / "empty.db").close()
    empty = weekly_context(str(tmp_path / "empty.db"), days=3)
    assert empty.empty
    assert "No data for this period" in empty.overview_html()
    json.dumps(empty.to_dict(), allow_nan=False)


def test_weekly_context_validates_arguments(tmp_path):
    with pytest.raises(ValidationError, match="as_of"):
        weekly_context(tmp_path / "x.db", as_of="not a date")
    with pytest.raises(ValidationError, match="days"):
        weekly_context(tmp_path / "x.db", days=0)


def test_weekly_context_with_history(history):
    yesterday = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    review = weekly_context(_store(history), _config(history), as_of=yesterday, charts=False)
    assert [m.model for m in review.models] == [XSS]
    section = review.models[0]
    assert section.records == 21  # 7 days x 3 segments
    head = section.headline.set_index("metric")
    assert head.loc["accuracy", "status"] == "degraded"
    assert head.loc["accuracy", "change_ci_lower"] < head.loc["accuracy", "change"] < head.loc[
        "accuracy", "change_ci_upper"]
    # the summary's alert count is the store's non-suppressed alerts of the period
    with Store(Path(_store(history))) as store:
        alerts = store.alerts(XSS, start=review.start, end=review.as_of)
    assert review.alerts == int((alerts["status"] != "suppressed").sum()) > 0
    assert section.n_suppressed == int((alerts["status"] == "suppressed").sum())
    assert section.segments["segment"].iloc[0] in ("us", "apac")  # a degraded segment is worst
    assert review.to_dict()["models"][0]["worst_segment"] == section.segments["segment"].iloc[0]
    for html in (section.headline_html(), section.alerts_html(), section.segments_html(),
                 review.overview_html()):
        assert "<script>" not in html
    assert "&lt;script&gt;" in review.overview_html()
    json.dumps(review.to_dict(), allow_nan=False)


def test_weekly_context_unknown_model(history):
    with pytest.raises(ValidationError, match="not in the store"):
        weekly_context(_store(history), _config(history), model="other", charts=False)


def test_as_of_before_the_history_is_a_no_data_review(history):
    review = weekly_context(_store(history), _config(history), as_of="2001-01-01", charts=False)
    assert review.empty and len(review.models) == 1 and review.models[0].empty


def test_template_with_history(history, tmp_path):
    out = tmp_path / "report"
    result = run_weekly_review(_store(history), out, config_path=_config(history), fail_on_alerts=True,
                               cell_timeout=300)
    # alerts in the period: the opt-in exit code, with the report still written
    assert result.exit_code == ExitCode.ALERTS_PRESENT
    assert result.summary["alerts"] > 0
    assert [m["model"] for m in result.summary["models"]] == [XSS]
    assert json.loads((out / "summary.json").read_text()) == result.summary
    html = result.html_path.read_text(encoding="utf-8")
    assert result.html_path.stat().st_size < 2_000_000
    assert "Traceback" not in html
    assert "weekly_context(" not in html  # code cells are hidden
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert" in html
    for heading in ("Headline numbers", "Trend analysis", "Alerts of the period", "Worst segments",
                    "Threshold explorer"):
        assert heading in html
    assert html.count('class="perfkit-chart"') >= 5
    assert (out / "weekly_review.ipynb").is_file()


def test_template_empty_store(tmp_path):
    Store(tmp_path / "empty.db").close()
    result = run_weekly_review(tmp_path / "empty.db", tmp_path / "out", cell_timeout=300,
                               fail_on_alerts=True)
    assert result.exit_code == ExitCode.OK
    assert result.summary["models"] == [] and result.summary["alerts"] == 0
    html = result.html_path.read_text(encoding="utf-8")
    assert "No data for this period" in html
    assert "Traceback" not in html


def test_template_failing_config_exit_code_through_the_cli(history, tmp_path, capsys):
    from perfkit.cli import main

    code = main(["review", "--store", _store(history), "--config", str(tmp_path / "missing.yaml"),
                 "--output-dir", str(tmp_path / "out"), "--cell-timeout", "300"])
    assert code == 2  # checked before any kernel starts (issue 14)
    err = capsys.readouterr().err.strip()
    assert "missing.yaml" in err and "configuration file not found" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # no kernel, no partial report
