"""Typed configuration: the seed's block loads unchanged; bad keys are named with their file."""

from __future__ import annotations

import pytest
import yaml

from perfkit.config import PerformanceConfig, load_config, save_config
from perfkit.exceptions import ConfigError

SEED_BLOCK = {
    "model_performance": {
        "degradation_thresholds": {
            "accuracy_drop": 0.05, "auc_drop": 0.03, "f1_drop": 0.05, "precision_drop": 0.05,
            "recall_drop": 0.05, "mse_increase": 0.10, "mae_increase": 0.10,
        },
        "performance_window_days": 30,
        "min_samples_for_trend": 10,
        "alert_cooldown_hours": 24,
        "auto_retraining_threshold": 0.15,
        "metrics_to_track": ["accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                             "log_loss", "mse", "rmse", "mae", "r2"],
        "alert_channels": ["log", "file", "email"],
        "performance_storage": {
            "history_file": "data/performance/performance_history.json",
            "alerts_file": "data/performance/alerts.json",
            "reports_dir": "data/performance/reports",
        },
    }
}


def _write(tmp_path, doc, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def test_seed_block_means_what_it_says(tmp_path):
    cfg = load_config(_write(tmp_path, SEED_BLOCK))
    d = cfg.detection
    assert d.thresholds == {"accuracy": 0.05, "roc_auc": 0.03, "f1_macro": 0.05, "precision_macro": 0.05,
                            "recall_macro": 0.05, "mse": 0.10, "mae": 0.10}
    assert cfg.performance_window_days == 30 and cfg.min_samples_for_trend == 10
    assert cfg.alert_cooldown_hours == 24 and d.auto_retraining_threshold == 0.15
    assert cfg.alert_channels == ("log", "file", "email")
    assert cfg.storage.alerts_file == "data/performance/alerts.json"
    assert cfg.store_url.startswith("sqlite:///")


def test_defaults_equal_the_seed_values():
    cfg = load_config(None)
    assert cfg.detection.thresholds["roc_auc"] == 0.03 and cfg.alert_cooldown_hours == 24


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"alert_cooldown_hours": -1}, "alert_cooldown_hours"),
        ({"alert_cooldown_hours": "soon"}, "alert_cooldown_hours"),
        ({"degradation_thresholds": {"accuracy_drop": -0.05}}, "accuracy_drop"),
        ({"degradation_thresholds": {"mse_drop": 0.1}}, "mse_drop"),  # wrong direction
        ({"degradation_thresholds": {"bogus_drop": 0.1}}, "bogus_drop"),
        ({"metrics_to_track": ["accuracy", "nope"]}, "metrics_to_track"),
        ({"alert_channels": ["pager"]}, "alert_channels"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"performance_storage": {"history_fil": "x"}}, "history_fil"),
        ({"severity_bands": {"moderate": 0.3, "critical": 0.2}}, "severity_bands"),
        ({"email": {"password": "hunter2"}}, "PERFKIT_SMTP_PASSWORD"),
        ({"min_samples_for_trend": 2.5}, "min_samples_for_trend"),
    ],
)
def test_bad_values_name_the_key_and_the_file(tmp_path, patch, needle):
    doc = {"model_performance": {**SEED_BLOCK["model_performance"], **patch}}
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert needle in msg and str(path) in msg
    assert isinstance(info.value, ValueError)
    assert "hunter2" not in msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_performance: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


def test_save_keeps_other_keys_and_round_trips(tmp_path):
    doc = {"pipeline": {"keep": True}, **SEED_BLOCK}
    path = _write(tmp_path, doc)
    cfg = load_config(path)
    new = cfg.replace(alert_cooldown_hours=6.0,
                      detection=cfg.detection.replace(thresholds={**cfg.detection.thresholds, "accuracy": 0.08}))
    save_config(new, path)
    again = load_config(path)
    assert again.alert_cooldown_hours == 6.0 and again.detection.thresholds["accuracy"] == 0.08
    assert again.detection.thresholds["roc_auc"] == 0.03
    raw = yaml.safe_load(path.read_text())
    assert raw["pipeline"] == {"keep": True}
    assert raw["model_performance"]["performance_storage"]["alerts_file"] == "data/performance/alerts.json"
    assert isinstance(again, PerformanceConfig)


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFKIT_WEBHOOK_URL", "https://hooks.example.test/T0KEN")
    cfg = load_config(_write(tmp_path, {"model_performance": {"webhook": {"format": "slack"}}}))
    assert cfg.webhook.resolved_url().endswith("T0KEN")
    assert "T0KEN" not in repr(cfg)


# ---- misspelt sections, key paths, thresholds that can never fire, confidence level ----------
@pytest.mark.parametrize("name", ["model_performace", "Model_Performance", "model-performance", "modelperformance"])
def test_misspelt_top_level_section_is_refused_with_a_suggestion(tmp_path, name):
    path = _write(tmp_path, {name: SEED_BLOCK["model_performance"], "pipeline": {"keep": True}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert name in msg and "did you mean 'model_performance'" in msg and str(path) in msg


def test_misspelt_section_next_to_the_real_one_is_refused(tmp_path):
    path = _write(tmp_path, {**SEED_BLOCK, "model_performace": {"alert_cooldown_hours": 1}})
    with pytest.raises(ConfigError, match="model_performace"):
        load_config(path)


def test_other_sections_of_a_pipeline_config_are_still_ignored(tmp_path):
    assert load_config(_write(tmp_path, {"pipeline": {"x": 1}, "training": {"epochs": 3}})).alert_cooldown_hours == 24
    assert load_config(_write(tmp_path, {**SEED_BLOCK, "performance": {"x": 1}})).alert_cooldown_hours == 24


def test_bare_section_with_a_misspelt_key_is_not_silently_ignored(tmp_path):
    path = _write(tmp_path, {"alert_cooldown_hours": 3, "metrics_to_trak": ["accuracy"]})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "metrics_to_trak" in str(info.value) and "did you mean 'metrics_to_track'" in str(info.value)
    assert load_config(_write(tmp_path, {"alert_cooldown_hours": 3})).alert_cooldown_hours == 3


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"email": {"port": 0}}, "model_performance.email.port"),
        ({"email": {"port": "smtp"}}, "model_performance.email.port"),
        ({"email": {"timeout": -1}}, "model_performance.email.timeout"),
        ({"email": {"security": "tls"}}, "model_performance.email.security"),
        ({"email": {"host": 25}}, "model_performance.email.host"),
        ({"email": {"sender": "  "}}, "model_performance.email.sender"),
        ({"email": {"recipients": [1]}}, "model_performance.email.recipients"),
        ({"email": {"password": "hunter2"}}, "model_performance.email.password"),
        ({"email": {"prot": 25}}, "model_performance.email"),
        ({"webhook": {"timeout": 0}}, "model_performance.webhook.timeout"),
        ({"webhook": {"url": "ftp://hooks.example.org/T0KEN"}}, "model_performance.webhook.url"),
        ({"severity_bands": {"moderate": -1}}, "model_performance.severity_bands.moderate"),
        ({"performance_storage": {"store_url": 5}}, "model_performance.performance_storage.store_url"),
        ({"degradation_thresholds": {"accuracy_drop": -0.05}}, "model_performance.degradation_thresholds.accuracy_drop"),
        ({"model_name": "   "}, "model_performance.model_name"),
    ],
)
def test_errors_name_the_full_key_path(tmp_path, patch, path):
    doc = {"model_performance": {**SEED_BLOCK["model_performance"], **patch}}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, doc))
    msg = str(info.value)
    assert path in msg, msg
    assert "hunter2" not in msg and "T0KEN" not in msg


def test_unknown_nested_key_suggests_the_known_one(tmp_path):
    doc = {"model_performance": {"email": {"prot": 25}}}
    with pytest.raises(ConfigError, match=r"email\.prot \(did you mean 'port'\?\)"):
        load_config(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("mode", "thresholds", "ok"),
    [
        ("relative", {"accuracy_drop": 1.5}, False),  # a relative drop of a [0, 1] metric is at most 1
        ("relative", {"auc_drop": 1.01}, False),
        ("relative", {"accuracy_drop": 1.0}, True),  # fires when accuracy falls to 0
        ("relative", {"mse_increase": 5.0}, True),  # unbounded above
        ("relative", {"r2_drop": 3.0}, True),  # r2 is unbounded below
        ("absolute", {"accuracy_drop": 1.5}, False),  # [0, 1]: an absolute drop is at most 1
        ("absolute", {"smape_increase": 2.5}, False),  # sMAPE lies in [0, 2]
        ("absolute", {"smape_increase": 1.5}, True),
        ("absolute", {"mae_increase": 1000.0}, True),
    ],
)
def test_thresholds_that_can_never_fire_are_refused(tmp_path, mode, thresholds, ok):
    from perfkit.metrics import get_metric

    doc = {"model_performance": {"threshold_mode": mode, "degradation_thresholds": thresholds}}
    path = _write(tmp_path, doc)
    if ok:
        cfg = load_config(path)
        assert len(cfg.detection.thresholds) == 1
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (key,) = thresholds
    spec = get_metric({"auc": "roc_auc"}.get(key.rsplit("_", 1)[0], key.rsplit("_", 1)[0]))
    msg = str(info.value)
    assert key in msg and "can never fire" in msg and mode in msg
    assert f"[{spec.lower:g}, {spec.upper:g}]" in msg  # the bounds come from the metric registry


def test_threshold_reach_follows_the_metric_registry():
    from perfkit.config import _max_degradation
    from perfkit.metrics.registry import METRICS

    for spec in METRICS.values():
        if spec.higher_is_better is None:
            continue
        for mode in ("relative", "absolute"):
            reach = _max_degradation(spec, mode)
            assert reach > 0
            if mode == "absolute":
                assert reach == spec.upper - spec.lower
            elif spec.higher_is_better and spec.lower == 0 and spec.upper == 1:
                assert reach == 1.0


@pytest.mark.parametrize("level", [0.3, 1.0, 1.5, "0.95", True, -0.95])
def test_confidence_level_is_validated(tmp_path, level):
    with pytest.raises(ConfigError, match="confidence_level"):
        load_config(_write(tmp_path, {"model_performance": {"confidence_level": level}}))
    with pytest.raises(ConfigError, match="confidence_level"):
        PerformanceConfig().replace(confidence_level=level)
    with pytest.raises(ConfigError, match="confidence_level"):
        PerformanceConfig(confidence_level=level)


def test_valid_confidence_levels_load(tmp_path):
    assert load_config(_write(tmp_path, {"model_performance": {"confidence_level": 0.9}})).confidence_level == 0.9
    assert load_config(_write(tmp_path, {"model_performance": {"confidence_level": None}})).confidence_level == 0.95


def test_refused_config_opens_no_store(tmp_path):
    from perfkit import ModelPerformanceTracker

    db = tmp_path / "perf.db"
    doc = {"model_performance": {"degradation_thresholds": {"accuracy_drop": 1.5},
                                 "performance_storage": {"store_url": f"sqlite:///{db}"}}}
    with pytest.raises(ConfigError):
        ModelPerformanceTracker(_write(tmp_path, doc))
    assert not db.exists()


@pytest.mark.parametrize("text, key", [
    ("model_performance:\n  degradation_thresholds:\n    accuracy_drop: 0.05\n    f1_drop: 0.1\n"
     "    accuracy_drop: 0.5\n", "accuracy_drop"),
    ("model_performance:\n  alert_cooldown_hours: 2\n  alert_cooldown_hours: 48\n", "alert_cooldown_hours"),
    ("model_performance: {alert_cooldown_hours: 2, alert_cooldown_hours: 3}\n", "alert_cooldown_hours"),
])
def test_a_key_given_twice_is_refused_not_silently_overridden(tmp_path, text, key):
    """PyYAML keeps the last of two equal keys; a config where a second ``accuracy_drop``
    further down quietly wins is refused, naming the key and both lines."""
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"found the key '{key}' twice"):
        load_config(path)


def test_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("defaults: &d\n  alert_cooldown_hours: 2\n  confidence_level: 0.9\n"
                    "model_performance:\n  <<: *d\n  alert_cooldown_hours: 6\n")
    cfg = load_config(path)
    assert cfg.alert_cooldown_hours == 6 and cfg.confidence_level == 0.9
