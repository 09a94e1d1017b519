"""Before the labels arrive, end to end: estimate -> alert -> labels -> one completed record
with realized values, the estimate it had, and the concept-drift check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfkit import ModelPerformanceTracker
from perfkit.config import parse_config

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _scored(rng, n, shift=0.0, flip=0.0):
    """Scores from a calibrated model; ``shift`` moves the covariate (the scores), ``flip``
    changes the relation between score and outcome (concept drift)."""
    z = rng.normal(size=n) + shift
    p = 1 / (1 + np.exp(-2.0 * z))
    y = (rng.random(n) < p).astype(int)
    y = np.where(rng.random(n) < flip, 1 - y, y)
    return y, (p > 0.5).astype(int), p


@pytest.fixture()
def tracker(tmp_path):
    section = {"degradation_thresholds": {"accuracy_drop": 0.05, "auc_drop": 0.05},
               "metrics_to_track": ["accuracy", "roc_auc", "f1_macro"], "alert_channels": ["log"]}
    t = ModelPerformanceTracker(config=parse_config(section), store=tmp_path / "late.db", model="churn")
    rng = np.random.default_rng(0)
    t.set_baseline(*_scored(rng, 50_000))
    return t, rng


def test_pending_batch_gets_estimates_and_estimated_alerts(tracker):
    t, rng = tracker
    y, yp, p = _scored(rng, 5000)
    ok = t.track_performance(None, yp, p, {"batch_id": "b1"}, timestamp=T0)
    est = ok["estimated_metrics"]
    assert ok.labels_pending and est["accuracy"].method == "cbpe"
    assert est["accuracy"].ci_lower <= float(np.mean(y == yp)) <= est["accuracy"].ci_upper
    assert not ok.alerts
    # covariate shift towards the uncertain region: the estimate falls, an estimated alert fires
    y2, yp2, p2 = _scored(rng, 5000, shift=0.0)
    p2 = 0.5 + (p2 - 0.5) * 0.15  # scores pulled to 0.5: the model is unsure, accuracy drops
    yp2 = (p2 > 0.5).astype(int)
    bad = t.track_performance(None, yp2, p2, {"batch_id": "b2"}, timestamp=T0 + timedelta(hours=1))
    kinds = {a.alert_type for a in bad.alerts}
    assert kinds == {"estimated_performance_degradation"}
    assert t.store.count("churn") == 2


def test_labels_complete_the_record_and_check_the_estimate(tracker):
    t, rng = tracker
    y, yp, p = _scored(rng, 5000)
    t.track_performance(None, yp, p, {"batch_id": "b1"}, timestamp=T0)
    done = t.track_performance(y, yp, p, {"batch_id": "b1"}, timestamp=T0)
    assert t.store.count("churn") == 1                      # the same record, completed
    assert not done.labels_pending and done["metrics"]["accuracy"].value == pytest.approx(np.mean(y == yp))
    assert done["concept_drift"] is not None and not done["concept_drift"].suspected
    rec = t.store.records("churn")[0]
    assert "estimated_metrics" in rec.metadata and rec.metrics["accuracy"]["value"] == pytest.approx(np.mean(y == yp))
    assert not any(a.alert_type == "concept_drift_suspected" for a in done.alerts)


def test_concept_drift_is_flagged_when_the_labels_disagree(tracker):
    t, rng = tracker
    y, yp, p = _scored(rng, 5000, flip=0.10)              # same scores, outcomes changed
    t.track_performance(None, yp, p, {"batch_id": "b9"}, timestamp=T0)
    done = t.track_performance(y, yp, p, {"batch_id": "b9"}, timestamp=T0)
    assert done["concept_drift"].suspected
    assert "concept_drift_suspected" in {a.alert_type for a in done.alerts}
    stored = t.store.alerts("churn")
    assert "concept_drift_suspected" in set(stored["alert_type"])


def test_summary_and_report_show_estimate_and_realized_side_by_side(tracker):
    t, rng = tracker
    now = datetime.now(UTC) - timedelta(hours=2)
    y, yp, p = _scored(rng, 3000)
    t.track_performance(None, yp, p, {"batch_id": "a"}, timestamp=now)
    t.track_performance(None, yp, p, {"batch_id": "b"}, timestamp=now + timedelta(minutes=5))
    t.track_performance(y, yp, p, {"batch_id": "a"}, timestamp=now)
    rows = {e["batch_id"]: e for e in t.get_performance_summary(days=1)["estimates"]}
    assert rows["b"]["labels_pending"] and rows["b"]["realized"] is None
    assert rows["a"]["realized"]["accuracy"] == pytest.approx(np.mean(y == yp))
    assert rows["a"]["estimated"]["accuracy"]["ci_lower"] <= rows["a"]["realized"]["accuracy"] \
        <= rows["a"]["estimated"]["accuracy"]["ci_upper"]
    report = t.generate_performance_report(days=1)
    assert {e["batch_id"] for e in report["summary"]["estimates"]} == {"a", "b"}


def test_label_set_declared_in_the_config(tmp_path):
    """model_classes in the YAML block fixes the label set before any batch: a first batch
    missing a class is still the model's 3-class batch."""
    section = {"model_name": "pets", "model_classes": ["cat", "dog", "eel"], "alert_channels": ["log"],
               "degradation_thresholds": {"accuracy_drop": 0.05}, "metrics_to_track": ["accuracy"]}
    t = ModelPerformanceTracker(config=parse_config(section), store=tmp_path / "pets.db")
    r = t.track_performance(["cat", "dog", "cat"], ["cat", "dog", "dog"], timestamp=T0)
    assert r.task == "multiclass" and list(r.state.classes) == ["cat", "dog", "eel"]
    with pytest.raises(Exception, match="model_classes"):
        parse_config({"model_classes": ["only"]})


def test_a_new_class_is_said_in_the_result_and_the_report(tmp_path):
    t = ModelPerformanceTracker(config=parse_config({"alert_channels": ["log"]}), store=tmp_path / "c.db",
                                model="m")
    now = datetime.now(UTC) - timedelta(hours=1)
    t.track_performance(["a", "b", "c"] * 5, ["a", "b", "c"] * 5, timestamp=now)
    r = t.track_performance(["a", "b", "d"] * 5, ["a", "b", "d"] * 5, timestamp=now + timedelta(minutes=1))
    assert "new class 'd'" in r.notes
    report = t.generate_performance_report(days=1)
    assert any("new class 'd'" in n for n in report["summary"]["notes"])
    assert report["summary"]["model_identity"]["classes"] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("kind", ["scores", "labels_only", "regression", "multiclass"])
def test_labels_for_other_predictions_are_refused_and_nothing_is_written(tmp_path, kind):
    """Completing a pending batch with predictions it was not tracked with is a mistake
    (another batch under a reused id, columns shifted): a ValidationError naming batch_id,
    the pending row untouched; the right predictions (in any row order) still complete it."""
    from perfkit.exceptions import ValidationError

    rng = np.random.default_rng(4)
    t = ModelPerformanceTracker(store=tmp_path / "p.db", model="m")
    n = 2000
    if kind == "regression":
        y = rng.normal(10, 3, n)
        yp, p, other, kw = y + rng.normal(size=n), None, None, {"task": "regression"}
        other = (yp * 1.001, None)
        t.set_baseline(y, yp, **kw)
    elif kind == "multiclass":
        y = rng.integers(0, 3, n)
        p = rng.dirichlet(np.ones(3), n)
        yp, kw = p.argmax(1), {}
        t.set_baseline(y, yp, p)
        other = (2 - yp, p[:, ::-1].copy())  # the class columns reversed
    else:
        y, yp, p = _scored(rng, n)
        kw = {}
        t.set_baseline(*_scored(rng, 20_000))
        if kind == "labels_only":
            p = None
            other = (1 - yp, None)
        else:
            other = (yp, np.clip(p + 0.01, 0, 1))
    t.track_performance(None, yp, p, batch_id="b1", timestamp=T0, **kw)
    before = t.store.records("m")
    assert len(before) == 1 and before[0].labels_pending
    with pytest.raises(ValidationError, match="pending with other predictions") as err:
        t.track_performance(y, other[0], other[1], batch_id="b1", timestamp=T0, **kw)
    assert err.value.parameter == "batch_id"
    pending = t.store.find_pending("m", "b1")
    assert pending is not None and pending.state == before[0].state
    order = rng.permutation(n)  # the same predictions in another row order: accepted
    done = t.track_performance(y[order], yp[order], None if p is None else p[order], batch_id="b1",
                               timestamp=T0, **kw)
    assert not done.labels_pending and t.store.find_pending("m", "b1") is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(5, 300), st.sampled_from([2, 3, 4]), st.booleans(), st.integers(0, 2**32 - 1))
def test_any_changed_prediction_is_refused_and_any_reordering_accepted(tmp_path_factory, n, k, scores, seed):
    """For any classification batch: one predicted class changed in the completing call is
    refused (nothing written); the same predictions shuffled with their labels complete it."""
    from perfkit.exceptions import ValidationError

    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    p = rng.dirichlet(np.ones(k), n) if scores else None
    yp = p.argmax(1) if scores else rng.integers(0, k, n)
    proba = (p[:, 1] if k == 2 else p) if scores else None
    t = ModelPerformanceTracker(store=tmp_path_factory.mktemp("h") / "p.db", model="m")
    t.track_performance(None, yp, proba, batch_id="b", timestamp=T0, classes=list(range(k)))
    i = int(rng.integers(0, n))
    other = yp.copy()
    other[i] = (other[i] + 1) % k
    with pytest.raises(ValidationError, match="pending with other predictions"):
        t.track_performance(y, other, proba, batch_id="b", timestamp=T0, classes=list(range(k)))
    assert t.store.find_pending("m", "b") is not None
    order = rng.permutation(n)
    t.track_performance(y[order], yp[order], None if proba is None else proba[order], batch_id="b", timestamp=T0,
                        classes=list(range(k)))
    assert t.store.find_pending("m", "b") is None and t.store.count("m") == 1
    t.close()
