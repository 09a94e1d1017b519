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
