"""The seed's tracker API on real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import math
import multiprocessing as mp
import unittest
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from perfkit import ModelPerformanceTracker, ProductionMonitor
from perfkit.exceptions import (
    InputTypeError,
    NonFiniteError,
    PerfkitError,
    ProbabilityError,
    ShapeError,
    StoreError,
    ValidationError,
)
from perfkit.metrics import register_custom_metric
from perfkit.metrics.registry import CUSTOM_METRICS

T0 = datetime(2026, 5, 4, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """The seed's tracker writes under data/performance/ of the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PERFKIT_CONFIG", raising=False)
    monkeypatch.delenv("PERFKIT_STORE_URL", raising=False)


# --------------------------------------------------------------------------------------------
# The seed's unit test, verbatim but for the import line.
from perfkit import ModelPerformanceTracker as _SeedTracker  # noqa: E402


class TestModelPerformanceTracker(unittest.TestCase):

    def setUp(self):
        self.tracker = _SeedTracker()
        self.y_true = np.array([0, 1, 0, 1, 0])
        self.y_pred = np.array([0, 1, 0, 1, 0])
        self.y_pred_proba = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8], [0.7, 0.3]])

    def test_performance_tracking(self):
        result = self.tracker.track_performance(
            self.y_true, self.y_pred, self.y_pred_proba
        )

        self.assertIsNotNone(result)
        self.assertIn('performance_score', result)
        self.assertIn('metrics', result)
        self.assertEqual(result['sample_count'], 5)

    def test_performance_summary(self):
        # Track some performance first
        self.tracker.track_performance(self.y_true, self.y_pred, self.y_pred_proba)

        summary = self.tracker.get_performance_summary(days=1)
        self.assertIsNotNone(summary)
        self.assertIn('total_records', summary)


# The seed's integration test, verbatim but for the import line.
def test_mlops_integration():
    """Test performance tracking integration with MLOps pipeline."""

    # Initialize components
    tracker = ModelPerformanceTracker()
    monitor = ProductionMonitor()

    # Simulate performance tracking
    y_true = np.random.choice([0, 1], 100, p=[0.7, 0.3])
    y_pred = np.random.choice([0, 1], 100, p=[0.7, 0.3])
    y_pred_proba = np.random.random((100, 2))
    y_pred_proba = y_pred_proba / y_pred_proba.sum(axis=1, keepdims=True)

    # Test direct tracking
    direct_result = tracker.track_performance(y_true, y_pred, y_pred_proba)

    # Test through production monitor
    monitor_result = monitor.track_model_performance(y_true, y_pred, y_pred_proba)

    # Verify results are consistent
    assert direct_result['performance_score'] == monitor_result['performance_score']

    print("✅ MLOps integration test passed")


# --------------------------------------------------------------------------------------------
def _clf(rng, n=500, acc=0.9):
    y = rng.integers(0, 2, n)
    yp = np.where(rng.random(n) < acc, y, 1 - y)
    p = np.clip(np.where(yp == 1, 0.5 + 0.5 * rng.random(n), 0.5 * rng.random(n)), 0, 1)
    return y, yp, p


def test_seed_yaml_block_loads_and_drives_the_tracker(tmp_path):
    cfg = tmp_path / "config" / "main_config.yaml"
    cfg.parent.mkdir()
    cfg.write_text("""
pipeline: {name: other-section-ignored}
model_performance:
  degradation_thresholds:
    accuracy_drop: 0.05
    auc_drop: 0.03
    f1_drop: 0.05
    precision_drop: 0.05
    recall_drop: 0.05
    mse_increase: 0.10
    mae_increase: 0.10
  performance_window_days: 30
  min_samples_for_trend: 10
  alert_cooldown_hours: 24
  auto_retraining_threshold: 0.15
  metrics_to_track: [accuracy, precision_macro, recall_macro, f1_macro, roc_auc, log_loss, mse, rmse, mae, r2]
  alert_channels: ['log', 'file', 'email']
  performance_storage:
    history_file: "data/performance/performance_history.json"
    alerts_file: "data/performance/alerts.json"
    reports_dir: "data/performance/reports"
""")
    t = ModelPerformanceTracker()  # picks config/main_config.yaml of the working directory
    assert t.config.detection.thresholds["roc_auc"] == 0.03
    assert [c.name for c in t.channels] == ["log", "file"]  # email listed but not configured: disabled
    rng = np.random.default_rng(0)
    t.set_baseline(*_clf(rng, 5000, 0.9))
    r = t.track_performance(*_clf(rng, 3000, 0.7), {"model_version": "v1.0", "batch_id": "batch_001"})
    assert r["degradation_analysis"]["degradation_detected"]
    assert (tmp_path / "data/performance/alerts.json").exists()
    assert (tmp_path / "data/performance/perfkit.db").exists()
    assert t.export_history() == t.export_history("data/performance/performance_history.json")


def test_result_is_typed_immutable_and_dict_like():
    t = ModelPerformanceTracker(model="m")
    rng = np.random.default_rng(1)
    r = t.track_performance(*_clf(rng), metadata={"batch_id": "b1", "model_version": "v2"}, segment="eu")
    assert r.batch_id == "b1" and r.model_version == "v2" and r.segment == "eu"
    m = r["metrics"]["accuracy"]
    assert m.ci_lower <= m.value <= m.ci_upper
    assert set(r["metrics"]) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                                 "log_loss", "sample_count", "prediction_variance"}
    expected = np.mean([r["metrics"][k].value for k in ("accuracy", "f1_macro", "roc_auc")])
    assert r["performance_score"] == pytest.approx(expected)
    with pytest.raises(AttributeError):
        r.performance_score = 1.0  # type: ignore[misc]
    assert r.get("degradation_analysis").get("degradation_detected") is False
    d = r.to_dict()
    assert d["metrics"]["accuracy"]["value"] == m.value
    assert t.store.history("m")["accuracy"].iloc[0] == m.value


def test_regression_metrics_and_score():
    t = ModelPerformanceTracker()
    rng = np.random.default_rng(2)
    y = rng.normal(10, 2, 400)
    r = t.track_performance(y, y + rng.normal(0, 1, 400))
    assert r.task == "regression"
    assert set(r["metrics"]) >= {"mse", "rmse", "mae", "r2", "mape", "smape", "sample_count", "prediction_variance"}
    assert r["performance_score"] == pytest.approx(min(1, max(0, r["metrics"]["r2"].value)))


BAD_CALLS = [
    (dict(y_true=[0, 1, 1], y_pred=[0, 1]), ShapeError),
    (dict(y_true=[0, 1, np.nan], y_pred=[0, 1, 1]), NonFiniteError),
    (dict(y_true=[0, 1], y_pred=[0, 1], y_pred_proba=[0.2, 1.3]), ProbabilityError),
    (dict(y_true=[], y_pred=[]), ValidationError),
    (dict(y_true=[0, 1], y_pred=[0, 1], metadata="not a dict"), InputTypeError),
    (dict(y_true=[0, 1], y_pred=[0, 1], metadata={"x": object()}), ValidationError),
    (dict(y_true=[0, 1], y_pred=[0, 1], timestamp=datetime(2026, 1, 1)), ValidationError),
    (dict(y_true=[0, 1], y_pred=[0, 1], segment=""), ValidationError),
    (dict(y_true=[0, 1], y_pred=[0, 1], task="ranking"), ValidationError),
]


@pytest.mark.parametrize(("kwargs", "error"), BAD_CALLS)
def test_bad_input_raises_and_writes_nothing(kwargs, error):
    t = ModelPerformanceTracker()
    t.track_performance([0, 1, 1], [0, 1, 0], timestamp=T0)
    before = t.store.count()
    with pytest.raises(error) as info:
        t.track_performance(**kwargs)
    assert isinstance(info.value, PerfkitError)
    assert getattr(info.value, "parameter", None)
    assert t.store.count() == before


def test_duplicate_batch_id_is_refused_without_a_partial_write():
    t = ModelPerformanceTracker()
    t.track_performance([0, 1], [0, 1], batch_id="x")
    with pytest.raises(StoreError):
        t.track_performance([0, 1], [1, 1], batch_id="x")
    assert t.store.count() == 1


def test_late_labels_complete_the_record():
    t = ModelPerformanceTracker()
    rng = np.random.default_rng(3)
    y, yp, p = _clf(rng)
    first = t.track_performance(None, yp, p, {"batch_id": "late-1"}, timestamp=T0)
    assert first.labels_pending and set(first["metrics"]) == {"sample_count", "prediction_variance"}
    assert math.isnan(first["performance_score"])
    assert t.store.count() == 1
    done = t.track_performance(y, yp, p, {"batch_id": "late-1"}, timestamp=T0)
    assert not done.labels_pending and "accuracy" in done["metrics"]
    assert t.store.count() == 1
    (rec,) = t.store.records("default")
    assert not rec.labels_pending and rec.metrics["accuracy"]["value"] == done["metrics"]["accuracy"].value


def test_custom_metrics_registry_and_subclass_hook():
    register_custom_metric("false_negatives", lambda y, p, proba: float(np.sum((np.asarray(y) == 1) & (np.asarray(p) == 0))),
                           higher_is_better=False, tasks={"binary"}, overwrite=True)

    class Custom(ModelPerformanceTracker):
        def _calculate_custom_metrics(self, y_true, y_pred, y_pred_proba=None):
            return {"business_accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) * 2}

    try:
        t = Custom()
        r = t.track_performance([0, 1, 1, 0], [0, 0, 1, 0])
        assert r["metrics"]["false_negatives"].value == 1.0
        assert r["metrics"]["business_accuracy"].value == 1.5
        hist = t.store.history("default")
        assert hist["false_negatives"].iloc[0] == 1.0 and hist["business_accuracy"].iloc[0] == 1.5
    finally:
        CUSTOM_METRICS.pop("false_negatives", None)


def test_streaming_generator_and_monitor_equivalence():
    t = ModelPerformanceTracker()
    rng = np.random.default_rng(5)
    batches = [dict(zip(("y_true", "y_pred", "y_pred_proba"), _clf(rng, 200), strict=True),
                    timestamp=T0 + timedelta(hours=i)) for i in range(4)]
    results = list(t.track_stream(iter(batches)))
    assert [r.sample_count for r in results] == [200] * 4
    mon = ProductionMonitor(tracker=t)
    r = mon.track_model_performance(batches[0]["y_true"], batches[0]["y_pred"], batches[0]["y_pred_proba"])
    assert r["performance_score"] == results[0]["performance_score"]


def test_default_baseline_is_first_batches_and_degradation_found():
    t = ModelPerformanceTracker(model="m")
    rng = np.random.default_rng(6)
    for d in range(5):
        r = t.track_performance(*_clf(rng, 2000, 0.9), timestamp=T0 + timedelta(days=d))
        assert r["degradation_analysis"]["findings"] == {}
    b = t.store.get_baseline("m")
    assert b is not None and b.source == "first_5_batches" and b.sample_count == 10_000
    r = t.track_performance(*_clf(rng, 2000, 0.7), timestamp=T0 + timedelta(days=6))
    da = r["degradation_analysis"]
    assert da["degradation_detected"] and "accuracy" in da["degraded_metrics"]
    f = da["findings"]["accuracy"]
    for key in ("baseline", "current", "relative_change", "ci_lower", "ci_upper", "p_value", "adjusted_p_value",
                "severity", "min_detectable_degradation"):
        assert key in f


def test_weekly_window_is_the_merge_of_its_batches():
    t = ModelPerformanceTracker()
    rng = np.random.default_rng(7)
    ys, yps, ps = [], [], []
    for d in range(7):
        y, yp, p = _clf(rng, 300)
        ys.append(y), yps.append(yp), ps.append(p)
        t.track_performance(y, yp, p, timestamp=T0 + timedelta(days=d))
    week = t.window_metrics(days=7, end=T0 + timedelta(days=6))
    from sklearn.metrics import f1_score

    assert week["f1_macro"].value == pytest.approx(f1_score(np.concatenate(ys), np.concatenate(yps), average="macro"), abs=1e-12)
    assert week["sample_count"].value == 2100


def test_summary_has_seed_keys_and_more():
    t = ModelPerformanceTracker()
    rng = np.random.default_rng(8)
    for d in range(12):
        t.track_performance(*_clf(rng, 1500, 0.9 if d < 8 else 0.75), timestamp=T0 + timedelta(days=d),
                            segment="eu" if d % 2 else "us")
    s = t.get_performance_summary(days=30, end=T0 + timedelta(days=12))
    assert s["total_records"] == 12
    assert s["performance_trend"]["trend_direction"] in {"improving", "stable", "degrading", "uncertain",
                                                         "insufficient_data"}
    assert s["degradation_summary"]["total_alerts"] >= 1
    assert set(s["segments"]) == {"eu", "us"}
    assert "accuracy" in s["latest_metrics"] and "accuracy" in s["metric_trends"]
    assert isinstance(s.to_frame(), pd.DataFrame)


# ------------------------------------------------------------------ real databases, concurrency
def test_tracking_on_sqlite_and_postgresql(store_url):
    t = ModelPerformanceTracker(store=store_url, model="db")
    rng = np.random.default_rng(9)
    for d in range(6):
        t.track_performance(*_clf(rng, 500), timestamp=T0 + timedelta(days=d), segment="a")
    h = t.get_history(days=30, end=T0 + timedelta(days=6))
    assert len(h) == 6 and h["timestamp"].dt.tz is not None
    assert t.store.get_baseline("db", segment="a") is not None


def _worker(url: str, wid: int, n: int) -> None:
    t = ModelPerformanceTracker(store=url, model="conc")
    rng = np.random.default_rng(wid)
    for i in range(n):
        y = rng.integers(0, 2, 20)
        t.track_performance(y, y, timestamp=T0 + timedelta(minutes=i), batch_id=f"w{wid}-{i}")
    t.close()


@pytest.mark.slow
def test_four_processes_track_250_batches_each(store_url):
    ModelPerformanceTracker(store=store_url, model="conc").close()  # create the schema first
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(store_url, w, 250)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    t = ModelPerformanceTracker(store=store_url, model="conc")
    assert t.store.count("conc") == 1000
    assert t.store.integrity_check() == []


def test_overflowing_regression_is_nan_with_reason_and_skipped_in_windows(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="r")
    t.track_performance([1.0, 2.0, 3.0], [1.1, 2.1, 2.9], timestamp=T0)
    r = t.track_performance([1e308, -1e308, 5e307], [-1e308, 1e308, 0.0], timestamp=T0 + timedelta(hours=1))
    assert math.isnan(r["metrics"]["mse"].value) and r["metrics"]["mse"].reason == "overflow"
    assert math.isnan(r["metrics"]["r2"].value) and r["metrics"]["r2"].reason == "overflow"
    w = t.window_metrics(days=30, end=T0 + timedelta(days=1))
    assert w.n == 3 and w["mse"].value == pytest.approx(0.01)
    assert "overflow_batches_skipped:1" in w["mse"].reason
    assert t.get_performance_summary(days=30, end=T0 + timedelta(days=1))["total_records"] == 2


def test_track_states_goes_through_the_same_transaction(tmp_path):
    from perfkit.exceptions import ModelIdentityError
    from perfkit.metrics import compute_state

    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    frame = pd.DataFrame({
        "state": [compute_state([0, 1, 1, 0], [0, 1, 0, 0]) for _ in range(6)],
        "timestamp": [T0 + timedelta(hours=i) for i in range(6)],
        "batch_id": [f"b{i}" for i in range(6)],
    })
    results = t.track_states(frame)
    assert len(results) == 6 and t.store.count() == 6
    assert t.store.get_baseline("m").source == "first_5_batches"
    bad = pd.DataFrame({"state": [compute_state([0.5, 1.5], [0.4, 1.4])], "timestamp": [T0], "batch_id": ["r"]})
    with pytest.raises(ModelIdentityError):
        t.track_states(bad)
    assert t.store.count() == 6
