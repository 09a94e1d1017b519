"""Prediction drift from stored states, before labels arrive, and its link with degradation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from perfkit import ProductionMonitor

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def _batch(rng, n, shift):
    """Scores drift upwards with ``shift``; accuracy falls as the scores drift."""
    y = (rng.random(n) < 0.4).astype(int)
    logit = np.where(y == 1, 1.5, -1.5) + rng.normal(scale=1.0, size=n) + shift * 2.5
    p = 1 / (1 + np.exp(-logit))
    return y, (p > 0.5).astype(int), p


def test_shifted_scores_are_flagged_and_correlate_with_the_drop(tmp_path):
    mon = ProductionMonitor(store=tmp_path / "d.db", model="m")
    rng = np.random.default_rng(11)
    mon.set_baseline(*_batch(rng, 20_000, 0.0))
    shifts = [0.0] * 10 + list(np.linspace(0.1, 1.0, 10))
    for d, s in enumerate(shifts):
        mon.track_model_performance(*_batch(rng, 2000, s), timestamp=T0 + timedelta(days=d))
    # a batch without labels yet: drift is still visible
    y, yp, p = _batch(rng, 2000, 1.0)
    mon.track_model_performance(None, yp, p, {"batch_id": "late"}, timestamp=T0 + timedelta(days=21))
    rep = mon.drift_report(days=30, end=T0 + timedelta(days=22))
    rows = {r["batch_id"]: r for r in rep["batches"]}
    stable = [r for r in rep["batches"][:10]]
    assert max(r["psi"] for r in stable) < 0.05
    assert sum(r["drifted"] for r in stable) <= 2
    assert rows["late"]["labels_pending"] and rows["late"]["drifted"] and rows["late"]["psi"] > 0.25
    corr = rep["correlation"]["accuracy"]
    assert corr["n"] == 20 and corr["rho"] > 0.7 and corr["p_value"] < 0.01
