"""The threshold explorer replays estimated alerts: for batches tracked before their labels,
``replay`` (and so the explorer) raises exactly the ``estimated_performance_degradation``
alerts the tracker stored, through the same decision and cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from perfkit import ModelPerformanceTracker
from perfkit.analysis import replay
from perfkit.analysis.degradation import estimated_frame
from perfkit.config import parse_config
from perfkit.metrics import evaluate, state_from_dict

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
EST = "estimated_performance_degradation"
STATUS = {"delivered": "fires", "pending": "fires", "recorded": "fires", "failed": "fires", "suppressed": "suppressed"}


def _scored(rng, n, squeeze=1.0):
    """A calibrated model; ``squeeze`` < 1 pulls the scores towards 0.5 (covariate shift to
    the uncertain region: accuracy and AUC fall, and the estimate sees it)."""
    z = rng.normal(size=n)
    p = 1 / (1 + np.exp(-2.0 * z))
    y = (rng.random(n) < p).astype(int)
    p = 0.5 + (p - 0.5) * squeeze
    return y, (p > 0.5).astype(int), p


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    section = {"degradation_thresholds": {"accuracy_drop": 0.05, "auc_drop": 0.04},
               "metrics_to_track": ["accuracy", "roc_auc", "f1_macro"], "alert_channels": ["log"],
               "alert_cooldown_hours": 5}
    t = ModelPerformanceTracker(config=parse_config(section), store=tmp_path_factory.mktemp("er") / "e.db",
                                model="churn")
    rng = np.random.default_rng(3)
    t.set_baseline(*_scored(rng, 30_000))
    labels = {}
    squeezes = [1.0, 0.9, 0.3, 0.2, 1.0, 0.5, 0.15, 0.15, 0.8, 0.25, 1.0, 0.1, 0.6, 0.2]
    for i, sq in enumerate(squeezes):
        y, yp, p = _scored(rng, int(rng.integers(800, 4000)), sq)
        bid = f"b{i:02d}"
        t.track_performance(None, yp, p, {"batch_id": bid}, timestamp=T0 + timedelta(hours=2 * i))
        labels[bid] = (y, yp, p, T0 + timedelta(hours=2 * i))
    for bid in ("b02", "b03", "b07", "b10"):  # some labels arrive: those batches are completed
        y, yp, p, ts = labels[bid]
        t.track_performance(y, yp, p, {"batch_id": bid}, timestamp=ts)
    yield t
    t.close()


def _stored(t) -> set[tuple]:
    a = t.store.alerts("churn")
    a = a[a["alert_type"] == EST]
    return {(r.batch_id, r.metric, r.severity, STATUS[r.status]) for r in a.itertuples(index=False)}


def _replayed(frame: pd.DataFrame) -> set[tuple]:
    frame = frame[frame["alert_type"] == EST]
    return {(r.batch_id, r.metric, r.severity, r.status) for r in frame.itertuples(index=False)}


def test_replay_of_pending_batches_equals_the_trackers_estimated_alerts(tracked):
    t = tracked
    stored = _stored(t)
    assert {s for *_, s in stored} == {"fires", "suppressed"}  # both kinds happen: the cooldown is replayed
    assert len({s for _, _, s, _ in stored}) >= 2  # several severities
    records = t.store.records("churn", include_pending=True)
    assert any(r.labels_pending for r in records) and any(not r.labels_pending for r in records)
    base = evaluate(state_from_dict(t.store.get_baseline("churn").state), level=t.config.confidence_level)
    out = replay(records, base, t.config.detection, metrics=list(t.config.metrics_to_track),
                 cooldown_hours=t.config.alert_cooldown_hours)
    assert _replayed(out) == stored
    # completed batches keep their estimate and so are replayed too; labelled batches' own
    # (realized) alerts are replayed as before, under their own alert type
    assert set(estimated_frame(records)["batch_id"]) == {r.batch_id for r in records}
    # a frame given explicitly gives the same
    frame_only = replay([], base, t.config.detection, metrics=list(t.config.metrics_to_track),
                        cooldown_hours=t.config.alert_cooldown_hours, estimates=estimated_frame(records))
    assert _replayed(frame_only) == stored


def test_explorer_shows_the_estimated_alerts(tracked):
    pytest.importorskip("ipywidgets")
    from perfkit.widgets import explore_thresholds

    t = tracked
    out = explore_thresholds(t)
    assert _replayed(out) == _stored(t)
    # the same decision: a looser threshold raises fewer estimated alerts, never more
    loose = explore_thresholds(t, thresholds={"accuracy": 0.25, "roc_auc": 0.25})
    assert len(_replayed(loose)) < len(_replayed(out))
