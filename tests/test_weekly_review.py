"""The weekly review: its data layer, and the template executed by papermill."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from perfkit.demo import DEMO_SEGMENTS, run_demo, simulate_batches
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
    for heading in ("In short", "Is something wrong?", "Headline numbers", "Since when?", "Trend analysis",
                    "Where? Segments", "Why? Within-segment change", "Prediction drift per segment",
                    "What was done? Alerts of the period", "Alerts by batch and segment", "Threshold explorer"):
        assert heading in html
    # the questions come in order
    order = [html.index(h) for h in ("In short", "Is something wrong?", "Since when?", "Where?", "Why?",
                                     "What was done?")]
    assert order == sorted(order)
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


def _shown(notebook: Path) -> list[str]:
    """The Markdown and HTML the executed notebook displays, chart ids and times left out."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            for mime in ("text/markdown", "text/html"):
                if mime in o.get("data", {}):
                    text = "".join(o["data"][mime])
                    out.append(re.sub(r"perfkit-chart-[0-9a-f]{32}", "ID", text))
    return out


def test_template_run_by_hand_shows_what_the_payload_builder_shows(history, tmp_path):
    """Without payload_path (a notebook opened by hand) the template builds the same payload."""
    import papermill

    as_of = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    built = run_weekly_review(_store(history), tmp_path / "cli", config_path=_config(history), as_of=as_of,
                              cell_timeout=300)
    by_hand = tmp_path / "hand.ipynb"
    papermill.execute_notebook(str(template_path()), str(by_hand), kernel_name="python3", progress_bar=False,
                               execution_timeout=300, cwd=str(tmp_path),
                               parameters={"store_url": _store(history), "config_path": _config(history),
                                           "as_of": as_of, "summary_path": str(tmp_path / "hand.json")})
    shown = _shown(by_hand)
    assert any("In short" in t for t in shown) and any("Threshold explorer" in t for t in shown)
    assert shown == _shown(built.notebook_path)
    hand_summary = json.loads((tmp_path / "hand.json").read_text())
    for summary in (hand_summary, built.summary):
        summary.pop("generated_at")
    assert hand_summary == built.summary


def test_payload_builder_errors_are_cell_errors(history, tmp_path):
    from perfkit.exceptions import ReportExecutionError
    from perfkit.report._review_run import start_payload_builder

    # the builder raises (a model the store does not have): the template raises the same error
    with pytest.raises(ReportExecutionError, match="ValidationError.*not in the store") as info:
        run_weekly_review(_store(history), tmp_path / "a", model="other", cell_timeout=300)
    assert info.value.exit_code == ExitCode.CELL_ERROR
    # the builder dies without a word: the template fails at once instead of waiting for it
    builder = start_payload_builder(_store(history), config_path=_config(history))
    builder.proc.kill()
    with pytest.raises(ReportExecutionError, match="builder exited with code -9") as info:
        run_weekly_review(_store(history), tmp_path / "b", config_path=_config(history), cell_timeout=300,
                          payload_builder=builder)
    assert info.value.exit_code == ExitCode.CELL_ERROR
    assert not Path(builder.tmp).exists()  # its temporary directory is gone


def test_template_failing_config_exit_code_through_the_cli(history, tmp_path, capsys):
    from perfkit.cli import main

    code = main(["review", "--store", _store(history), "--config", str(tmp_path / "missing.yaml"),
                 "--output-dir", str(tmp_path / "out"), "--cell-timeout", "300"])
    assert code == 2  # checked before any kernel starts (issue 14)
    err = capsys.readouterr().err.strip()
    assert "missing.yaml" in err and "configuration file not found" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # no kernel, no partial report


# ------------------------------------------------------------------------------ the summary box
def _degrade_start(weeks: int) -> pd.Timestamp:
    """First degraded day of a demo history ending now (see perfkit.demo.simulate_batches)."""
    n_days = weeks * 7
    today = pd.Timestamp.now(tz="UTC").normalize()
    return today - pd.Timedelta(days=n_days) + pd.Timedelta(days=n_days // 2)


def test_summary_sentences_on_the_demo_history(history):
    review = weekly_context(_store(history), _config(history), charts=False)
    section = review.models[0]
    sentences = list(section.narrative)
    assert 3 <= len(sentences) <= 5
    what, since, where = sentences[:3]
    # is something wrong: the primary metric, its change with an interval, beyond the threshold
    head = section.headline.set_index("metric")
    acc = head.loc["accuracy"]
    assert what.startswith("accuracy fell from ")
    assert f"{acc['change']:+.3f}" in what and "95 % interval" in what and "beyond its alert threshold" in what
    # since when: the change point lies in the degraded half of the history, not before it
    stamp = pd.Timestamp(re.search(r"started around (\d{4}-\d{2}-\d{2})", since).group(1), tz="UTC")
    assert _degrade_start(2) <= stamp <= pd.Timestamp.now(tz="UTC")
    # where: the two degraded segments carry it, the healthy one does not
    carried = where.split(";")[0]
    assert "us (" in carried and "apac (" in carried and "eu" not in carried
    assert "eu shows no credible change" in where
    # why: the exact split is quoted
    split = section.shift_shares["accuracy"]
    assert f"{split.within:+.3f}" in sentences[3] and "segment mix" in sentences[3]
    # what was done: the store's own counts
    with Store(Path(_store(history))) as store:
        alerts = store.alerts(XSS, start=review.start, end=review.as_of)
    sent = int((alerts["status"] != "suppressed").sum())
    suppressed = int((alerts["status"] == "suppressed").sum())
    assert sentences[-1].startswith(f"{sent} alerts were sent and {suppressed} suppressed")
    assert "In short" in section.narrative_html() and "<script>" not in section.narrative_html()


def test_shift_share_from_stored_states_is_exact(history):
    review = weekly_context(_store(history), _config(history), charts=False)
    section = review.models[0]
    head = section.headline.set_index("metric")
    assert {"accuracy", "log_loss"} <= set(section.shift_shares)
    for metric, split in section.shift_shares.items():
        # the demo's model baseline is its segments' validation data merged: the same overall change
        assert split.within + split.mix == pytest.approx(head.loc[metric, "change"], abs=1e-12, rel=0)
        assert {s.segment for s in split.segments} == set(DEMO_SEGMENTS)
    acc = section.shift_shares["accuracy"]
    assert abs(acc.within) > abs(acc.mix)  # the drop is inside segments, not a change of mix
    assert "within-segment" in section.why_html()
    drift = section.drift.set_index("segment")
    assert drift["median_psi"].idxmax() == "apac"  # the covariate-shifted segment drifts
    assert drift.loc["apac", "drifted_batches"] > 0


@pytest.fixture(scope="module")
def healthy_history(tmp_path_factory) -> tuple[str, str]:
    """A demo-like history without any degradation."""
    import yaml

    from perfkit.tracker import ModelPerformanceTracker

    out = tmp_path_factory.mktemp("healthy")
    config = {"model_performance": {
        "model_name": "healthy", "degradation_thresholds": {"accuracy_drop": 0.05, "auc_drop": 0.03},
        "metrics_to_track": ["accuracy", "roc_auc", "log_loss"], "alert_channels": [],
        "performance_window_days": 28,
        "performance_storage": {"store_url": f"sqlite:///{(out / 'h.db').as_posix()}"}}}
    (out / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _, batches, validation = simulate_batches(weeks=2, rows=(150, 250), degrade_after_days=10_000, seed=3)
    with ModelPerformanceTracker(out / "config.yaml", model="healthy") as tracker:
        for seg, v in validation.items():
            tracker.set_baseline(v["y_true"], v["y_pred"], v["y_pred_proba"], segment=seg)
        for b in batches:
            tracker.track_performance(b["y_true"], b["y_pred"], b["y_pred_proba"], timestamp=b["timestamp"],
                                      segment=b["segment"], batch_id=b["batch_id"])
    return str(out / "h.db"), str(out / "config.yaml")


def test_summary_sentences_on_a_healthy_history(healthy_history):
    review = weekly_context(*healthy_history, charts=False)
    section = review.models[0]
    sentences = list(section.narrative)
    assert sentences[0].startswith("No credible change in the last 7 days")
    assert "accuracy" in sentences[0] and "includes 0" in sentences[0]
    assert not any("started around" in s or "carried by" in s for s in sentences)
    assert sentences[-1] == "No alerts were raised in the period." or "sent" in sentences[-1]
    assert set(section.headline["status"]) <= {"ok", "no threshold"}


def test_explorer_chart_starts_with_the_python_decision(history):
    """Before any script runs (static SVG), the explorer shows what replay fires at the configured threshold."""
    import vl_convert

    from perfkit.report._explorer import explorer_data, explorer_decision
    from perfkit.tracker import ModelPerformanceTracker

    review = weekly_context(_store(history), _config(history))
    section = review.models[0]
    spec = section.explorer_chart.to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert params["explorer_metric"]["bind"]["options"] == ["accuracy", "f1_macro", "roc_auc", "log_loss"]
    payload = spec["usermeta"]["perfkit_explorer"]
    assert set(payload["rows"]) >= {"value", "se", "successes", "trials", "baseline", "baseline_se",
                                    "baseline_successes", "baseline_trials", "family", "window", "time", "key"}
    with ModelPerformanceTracker(_config(history)) as tracker:
        data = explorer_data(tracker, XSS, start=review.as_of - pd.Timedelta(days=review.trend_days))
        expected = explorer_decision(data, "accuracy", params["threshold"]["value"] / 100)
    fires = expected[expected["status"] == "fires"]
    assert set(params["fire_keys"]["value"]) == set(fires["key"]) and params["fire_count"]["value"] == len(fires)
    scenegraph = vl_convert.vegalite_to_scenegraph(spec)

    def marks(node, name):
        if isinstance(node, dict):
            if node.get("name") == name and "items" in node:
                yield from node["items"]
            for v in node.values():
                yield from marks(v, name)
        elif isinstance(node, list):
            for v in node:
                yield from marks(v, name)

    red = [m for m in marks(scenegraph, "threshold_points_marks") if m.get("fill") == "#d62728"]
    assert len(red) == len(fires) > 0
    (text,) = list(marks(scenegraph, "alert_count_marks"))
    assert text["text"].startswith(f"{len(fires)} alert")
    summary = section.to_dict()
    assert summary["drift_by_segment"][0]["segment"] == "apac"
    json.dumps(summary, allow_nan=False)
