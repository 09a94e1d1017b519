"""Any history the tracker accepts stays readable by every summary, report, window, replay and review.

A Hypothesis property: random sequences of valid batches (classes missing from a batch,
string labels, a class that appears later, batches with and without probabilities,
prediction-only batches completed later) thrown at ONE model; every reader must work.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from perfkit import ModelPerformanceTracker
from perfkit.config import load_config
from perfkit.exceptions import ModelIdentityError
from perfkit.widgets.explorer import explore_thresholds

T0 = datetime(2024, 5, 1, tzinfo=UTC)

batch = st.fixed_dictionaries({
    "n": st.integers(3, 60),
    "n_classes": st.integers(1, 4),   # classes shown by this batch (of the model's pool)
    "offset": st.integers(0, 3),
    "proba": st.booleans(),
    "pending": st.sampled_from([False, False, False, True]),
    "seed": st.integers(0, 2**16),
})


def _labels(kind: str, pool: int) -> list:
    names = ["cat", "dog", "eel", "fox", "gnu"]
    return names[:pool] if kind == "str" else list(range(pool))


def _batch(spec: dict, labels: list, rng_seed: int):
    rng = np.random.default_rng(rng_seed)
    k = len(labels)
    shown = [labels[(spec["offset"] + j) % k] for j in range(min(spec["n_classes"], k))]
    n = spec["n"]
    idx = rng.integers(0, len(shown), n)
    y = np.array([shown[i] for i in idx], dtype=object)
    correct = rng.random(n) < 0.8
    pred = np.array([y[i] if correct[i] else shown[(idx[i] + 1) % len(shown)] for i in range(n)], dtype=object)
    proba = None
    if spec["proba"]:
        raw = rng.random((n, k)) + 0.05
        for i in range(n):
            raw[i, labels.index(pred[i])] += 2.0
        proba = raw / raw.sum(axis=1, keepdims=True)
    if isinstance(labels[0], int):
        y, pred = y.astype(np.int64), pred.astype(np.int64)
    return y, pred, proba


def _check_readers(tracker: ModelPerformanceTracker, url: str) -> None:
    summary = tracker.get_performance_summary(days=30, end=T0 + timedelta(days=2))
    assert summary["total_records"] >= 1
    report = tracker.generate_performance_report(days=30, end=T0 + timedelta(days=2))
    assert report["model"] == "m" or report
    w = tracker.window_metrics(days=30, end=T0 + timedelta(days=2))
    if w is not None:
        assert w["accuracy"].n >= 1 and (0 <= w["accuracy"].value <= 1 or math.isnan(w["accuracy"].value))
    tracker.get_history(days=30, end=T0 + timedelta(days=2))
    tracker.store.window_states("m", "1D")
    if tracker.store.get_baseline("m") is not None and len(tracker.store.states("m")) > 2:
        explore_thresholds(tracker, days=None)  # replay over the history after the baseline
    from perfkit.report.weekly import weekly_context

    weekly_context(url, model="m", as_of=T0 + timedelta(days=2), days=7, charts=False)


@settings(max_examples=15, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["str", "int"]), pool=st.integers(2, 5), late=st.booleans(),
       batches=st.lists(batch, min_size=1, max_size=9))
def test_any_accepted_history_stays_readable(kind, pool, late, batches):
    labels = _labels(kind, pool)
    folder = tempfile.mkdtemp()
    url = f"sqlite:///{os.path.join(folder, 'h.db')}"
    cfg = load_config().replace(alert_channels=(), baseline_batches=2, alert_cooldown_hours=0)
    tracker = ModelPerformanceTracker(store=url, config=cfg, model="m")
    accepted = 0
    # ``late``: the last class of the pool only appears after the first batch
    for i, spec in enumerate(batches):
        active = labels if not late or i > 0 or pool < 3 else labels[:-1]
        if accepted == 0:  # the first batch must show two classes to fix a classification model
            spec = {**spec, "n_classes": max(2, spec["n_classes"]), "n": max(4, spec["n"])}
        y, pred, proba = _batch(spec, active, spec["seed"])
        ts = T0 + timedelta(hours=i)
        before = (tracker.store.count(), len(tracker.store.alerts()), len(tracker.store.baselines()))
        # unnamed probability columns need the class list (perfkit cannot guess string labels)
        kw = {"timestamp": ts, "batch_id": f"b{i}", "classes": active if proba is not None else None}
        try:
            if spec["pending"]:
                tracker.track_performance(None, pred, proba, **kw)
            tracker.track_performance(y, pred, proba, **kw)
            accepted += 1
        except ModelIdentityError as exc:  # a binary model shown a third class: refused, nothing written
            assert "binary model" in str(exc)
            assert (tracker.store.count(), len(tracker.store.alerts()), len(tracker.store.baselines())) == before
    if accepted:
        _check_readers(tracker, url)
    tracker.close()


def test_batch_missing_a_class_stays_multiclass(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    t.track_performance(["cat", "dog", "eel", "cat"], ["cat", "dog", "dog", "cat"], timestamp=T0)
    r = t.track_performance(["cat", "dog"], ["cat", "cat"], timestamp=T0 + timedelta(hours=1))
    assert r.task == "multiclass" and r.state.classes == ("cat", "dog", "eel")
    assert t.store.model_identity("m")["classes"] == ["cat", "dog", "eel"]
    assert t.get_performance_summary(days=30, end=T0 + timedelta(days=1))["total_records"] == 2


def test_new_class_extends_the_label_set(tmp_path, caplog):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    t.track_performance(["a", "b", "c"] * 5, ["a", "b", "c"] * 5, timestamp=T0)
    with caplog.at_level("WARNING", logger="perfkit"):
        r = t.track_performance(["a", "d", "c"] * 5, ["a", "d", "b"] * 5, timestamp=T0 + timedelta(hours=1))
    assert "new class 'd'" in caplog.text
    assert r.notes == ("new class 'd'",) and r.to_dict()["notes"] == ["new class 'd'"]
    assert r.state.classes == ("a", "b", "c", "d")
    assert t.store.model_identity("m")["classes"] == ["a", "b", "c", "d"]
    w = t.window_metrics(days=30, end=T0 + timedelta(days=1))
    assert w["accuracy"].n == 30 and w["accuracy"].value == pytest.approx(25 / 30)


def test_batch_of_another_task_is_refused_before_writing(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    t.track_performance([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1], timestamp=T0)
    before = (t.store.count(), len(t.store.alerts()), len(t.store.baselines()))
    for call in (
        lambda: t.track_performance([0.5, 1.5, 2.5], [0.4, 1.6, 2.4], timestamp=T0),      # regression
        lambda: t.track_performance([0, 1, 2, 3, 4], [0, 1, 2, 3, 3], timestamp=T0),      # 5 classes
        lambda: t.set_baseline([0.5, 1.5, 2.5], [0.4, 1.6, 2.4]),                          # baseline
    ):
        with pytest.raises(ModelIdentityError, match=r"binary model with labels \[0, 1\]"):
            call()
        assert (t.store.count(), len(t.store.alerts()), len(t.store.baselines())) == before


def test_regression_baseline_refused_for_a_classifier(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    t.set_baseline([0, 1, 1, 0], [0, 1, 1, 0])
    with pytest.raises(ModelIdentityError, match="binary model"):
        t.set_baseline([0.5, 1.5, 2.5], [0.4, 1.6, 2.4])
    assert len(t.store.baselines()) == 1


def test_batches_with_and_without_scores_share_one_history(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    t.track_performance([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1], timestamp=T0)
    t.track_performance([0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 1, 0], timestamp=T0 + timedelta(hours=1))
    w = t.window_metrics(days=30, end=T0 + timedelta(days=1))
    assert w["accuracy"].n == 10 and w["accuracy"].value == pytest.approx(0.8)
    assert w["log_loss"].n == 4 and w["roc_auc"].n == 4  # score metrics: the rows that had scores
    assert t.get_performance_summary(days=30, end=T0 + timedelta(days=1))["total_records"] == 2


def test_store_written_before_identities_gets_it_from_its_batches(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    t.track_performance(["a", "b", "c", "a"], ["a", "b", "c", "c"], timestamp=T0)
    with t.store.engine.begin() as conn:  # as a store migrated from schema 0001 looks
        conn.exec_driver_sql("DELETE FROM perfkit_models")
    t.close()
    t = ModelPerformanceTracker(store=tmp_path / "s.db", model="m")
    r = t.track_performance(["a", "b"], ["a", "a"], timestamp=T0 + timedelta(hours=1))
    assert r.task == "multiclass" and t.store.model_identity("m")["classes"] == ["a", "b", "c"]
    t.close()
