"""ThresholdExplorer driven like a user would, without a browser (ipywidgets run in pytest).

The golden check: what the explorer shows for some settings is exactly what
``degradation.replay`` predicts AND exactly what a fresh tracker configured with those
settings raises (and suppresses) when it tracks the same batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("ipywidgets")

from perfkit.analysis import history_frame, replay
from perfkit.config import load_config, parse_config
from perfkit.exceptions import ValidationError
from perfkit.widgets import ThresholdExplorer, alert_counts, example_history, explore_thresholds
from perfkit.widgets.explorer import _downsample

N_BATCHES, DEGRADE_AT, BATCH_SIZE, SEED = 40, 25, 800, 7
CONFIG = parse_config({"alert_channels": ["log"]}, source="<test>")


def _track(url, config=CONFIG):
    return example_history(url, n_batches=N_BATCHES, degrade_at=DEGRADE_AT, batch_size=BATCH_SIZE,
                           accuracy=0.9, degraded_accuracy=0.75, seed=SEED, config=config)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    t = _track(tmp_path_factory.mktemp("explorer") / "history.db")
    yield t
    t.close()


@pytest.fixture
def explorer(tracker):
    return ThresholdExplorer(tracker, render_chart=False)


def _keys(alerts: pd.DataFrame) -> set[tuple]:
    return {(r.batch_id, r.metric, r.alert_type, r.severity, r.status)
            for r in alerts.itertuples(index=False)}


def _stored_keys(store) -> set[tuple]:
    frame = store.alerts()
    status = {"delivered": "fires", "pending": "fires", "recorded": "fires", "failed": "fires",
              "suppressed": "suppressed"}
    return {(r.batch_id, None if r.metric is None or r.metric != r.metric else r.metric,
             r.alert_type, r.severity, status[r.status]) for r in frame.itertuples(index=False)}


def test_initial_state_is_the_trackers_own_alerts(tracker, explorer):
    # with the tracker's own config, the replay reproduces what the tracker stored live
    assert _keys(explorer.alerts) == _stored_keys(tracker.store)
    assert explorer.counts == alert_counts(explorer.alerts)
    assert explorer.counts["fires"] > 0
    # nothing fires before the degradation
    first_bad = f"b{DEGRADE_AT:05d}"
    assert (explorer.alerts["batch_id"] >= first_bad).all()


@pytest.mark.parametrize("change", [
    {"threshold": ("accuracy", 0.12), "cooldown": 0.0, "gating": "none"},
    {"threshold": ("roc_auc", 0.08), "cooldown": 72.0, "alpha": 0.01, "moderate": 0.12, "critical": 0.18},
])
def test_sliders_match_replay_and_a_fresh_tracker(tracker, explorer, tmp_path, change):
    metric, value = change["threshold"]
    explorer.threshold_sliders[metric].value = value
    explorer.cooldown_slider.value = change["cooldown"]
    if "gating" in change:
        explorer.gating_dropdown.value = change["gating"]
    if "alpha" in change:
        explorer.alpha_slider.value = change["alpha"]
    if "critical" in change:
        explorer.critical_slider.value = change["critical"]
        explorer.moderate_slider.value = change["moderate"]
    s = explorer.settings
    assert explorer.error is None
    assert s.thresholds[metric] == value and explorer.cooldown_hours == change["cooldown"]
    assert s.severity_bands["critical"] == change.get("critical", 0.20)

    # 1. what replay predicts (baseline = first 5 batches, which are not checked)
    recs = tracker.store.records(tracker.model, include_pending=False)[CONFIG.baseline_batches:]
    expected = replay(history_frame(recs), tracker.get_baseline(), s, metrics=explorer.metrics,
                      cooldown_hours=change["cooldown"])
    assert _keys(explorer.alerts) == _keys(expected)
    pd.testing.assert_frame_equal(explorer.alerts.reset_index(drop=True), expected, check_dtype=False)

    # 2. what a fresh tracker with the chosen config raises on the same batches
    fresh = _track(tmp_path / "fresh.db", config=explorer.chosen_config())
    try:
        assert _keys(explorer.alerts) == _stored_keys(fresh.store)
    finally:
        fresh.close()

    # 3. the plain function gives the same table
    table = explore_thresholds(tracker, thresholds={metric: value}, cooldown_hours=change["cooldown"],
                               alpha=s.alpha, gating=s.gating, severity_bands=s.severity_bands)
    assert _keys(table) == _keys(explorer.alerts)


def test_saved_yaml_reloads_to_the_same_settings(explorer, tmp_path):
    path = tmp_path / "main_config.yaml"
    path.write_text(yaml.safe_dump({
        "pipeline": {"schedule": "hourly"},
        "model_performance": {"alert_channels": ["log"], "email": {"host": "smtp.local"},
                              "degradation_thresholds": {"mse_increase": 0.2, "accuracy_drop": 0.05}},
    }))
    explorer.threshold_sliders["accuracy"].value = 0.07
    explorer.critical_slider.value = 0.3
    explorer.cooldown_slider.value = 12
    explorer.alpha_slider.value = 0.02
    explorer.gating_dropdown.value = "significance"
    explorer.path_text.value = str(path)
    explorer.save_button.click()
    assert "saved" in explorer.save_status.value and explorer.last_saved == path

    cfg = load_config(path)
    s = explorer.settings
    assert {k: cfg.detection.thresholds[k] for k in explorer.metrics} == \
        {k: s.thresholds[k] for k in explorer.metrics}
    assert cfg.detection.thresholds["accuracy"] == 0.07
    assert cfg.detection.thresholds["mse"] == 0.2  # a threshold the explorer did not show
    assert dict(cfg.detection.severity_bands) == dict(s.severity_bands) == {"moderate": 0.1, "critical": 0.3}
    assert (cfg.detection.gating, cfg.detection.alpha) == ("significance", 0.02)
    assert cfg.alert_cooldown_hours == 12
    doc = yaml.safe_load(path.read_text())
    assert doc["pipeline"] == {"schedule": "hourly"}
    assert doc["model_performance"]["email"] == {"host": "smtp.local"}
    assert "accuracy_drop" in doc["model_performance"]["degradation_thresholds"]

    # a new file reloads to exactly the explorer's detection settings
    fresh = explorer.save(tmp_path / "new.yaml")
    assert load_config(fresh).detection == explorer.settings


def test_settings_move_counts_in_the_expected_direction(explorer):
    def fires() -> int:
        return explorer.counts["fires"] + explorer.counts["suppressed"]

    explorer.cooldown_slider.value = 0
    base = fires()
    explorer.gating_dropdown.value = "none"
    assert fires() >= base
    explorer.gating_dropdown.value = "minimum_effect"

    explorer.alpha_slider.value = 0.2
    loose = fires()
    explorer.alpha_slider.value = 0.001
    assert fires() <= loose
    explorer.alpha_slider.value = 0.05

    counts = []
    for t in (0.02, 0.05, 0.1, 0.2, 0.4):
        explorer.threshold_sliders["accuracy"].value = t
        counts.append(int((explorer.alerts["metric"] == "accuracy").sum()))
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]

    explorer.threshold_sliders["accuracy"].value = 0.05
    suppressed = []
    for hours in (0, 24, 72, 168):
        explorer.cooldown_slider.value = hours
        suppressed.append(explorer.counts["suppressed"])
    assert suppressed == sorted(suppressed) and suppressed[0] == 0 < suppressed[-1]

    explorer.moderate_slider.value = 0.5
    explorer.critical_slider.value = 0.9
    assert explorer.counts["critical"] == explorer.counts["moderate"] == 0


def test_invalid_band_is_refused_and_keeps_the_last_results(explorer, tmp_path):
    before = explorer.alerts.copy()
    explorer.critical_slider.value = 0.05  # below moderate (0.10)
    assert explorer.error is not None and "critical" in explorer.error
    assert "critical" in explorer.counts_html.value
    pd.testing.assert_frame_equal(explorer.alerts, before)
    with pytest.raises(ValidationError):
        explorer.save(tmp_path / "x.yaml")
    explorer.critical_slider.value = 0.25
    assert explorer.error is None and explorer.settings.severity_bands["critical"] == 0.25


def test_counts_label_and_table_follow_the_alerts(explorer):
    explorer.threshold_sliders["accuracy"].value = 0.05
    label = explorer.counts_html.value
    assert f"{explorer.counts['fires']} alerts would fire" in label
    assert "perfkit-alert-table" in explorer.table_html.value
    for m in explorer.threshold_sliders:
        explorer.threshold_sliders[m].value = 0.5
    assert "No alert would fire" in explorer.table_html.value
    assert explorer.counts["fires"] == 0


def test_chart_is_rendered_for_the_chosen_metric(tracker):
    ex = ThresholdExplorer(tracker)
    assert "<svg" in ex.chart_html.value
    spec = ex.chart_spec
    assert spec["title"]["text"].endswith(": accuracy")
    points = spec["layer"][-1]["data"]["values"]
    fired = {p["kind"] for p in points}
    assert fired <= {"minor", "moderate", "critical", "suppressed"} and fired
    ex.metric_dropdown.value = "roc_auc"
    assert ex.chart_spec["title"]["text"].endswith(": roc_auc")
    assert ex.chart.to_dict()["title"]["text"].endswith(": roc_auc")
    assert ex.last_update_seconds < 30


def test_other_sources(tracker):
    ex = ThresholdExplorer(tracker.store.url, render_chart=False, config=CONFIG)
    assert _keys(ex.alerts) == _stored_keys(tracker.store)
    recs = tracker.store.records(tracker.model, include_pending=False)[5:]
    table = explore_thresholds(recs, baseline=tracker.get_baseline(), config=CONFIG)
    assert _keys(table) == _keys(ex.alerts)
    last = explore_thresholds(tracker, days=5, cooldown_hours=0)
    assert last["timestamp"].min() > recs[-1].timestamp - pd.Timedelta(days=5)
    with pytest.raises(ValidationError) as err:
        explore_thresholds(recs)
    assert err.value.parameter == "baseline"
    with pytest.raises(ValidationError) as err:
        explore_thresholds(tracker, alpha=0)
    assert err.value.parameter == "alpha"
    with pytest.raises(ValidationError) as err:
        explore_thresholds(tracker, gating="sometimes")
    assert err.value.parameter == "gating"
    with pytest.raises(ValidationError) as err:
        explore_thresholds(tracker, metrics=["mse"])
    assert err.value.parameter == "metrics"


def test_downsample_keeps_extremes():
    ts = pd.date_range("2025-01-01", periods=10_000, freq="h", tz="UTC")
    values = np.sin(np.arange(10_000) / 50.0)
    values[1234] = -5.0
    frame = pd.DataFrame({"timestamp": ts, "value": values})
    small = _downsample(frame, "value", 2000)
    assert len(small) <= 2000
    assert small["value"].min() == -5.0 and small["value"].max() == values.max()
    assert small["timestamp"].is_monotonic_increasing
