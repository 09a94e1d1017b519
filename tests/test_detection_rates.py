"""Seeded, small versions of ``benchmarks/detection.py``: they fail when the decision regresses.

The full tables (2,000 stable calls per cell, every size and task, 20-segment calls) are in
the benchmark; here the hardest cells at a size that separates the current rule from the
previous one (5-class, 50 rows: 2.3 % false alerts before, about 0.5 % now).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

import detection as bench

from perfkit.metrics import compute_metrics


def _stable_rates(task: str, n: int, calls: int, seed: int) -> tuple[float, float]:
    make, healthy, _ = bench.TASKS[task]
    rng = np.random.default_rng(seed)
    gated, _ = bench.detector_settings()
    baseline = compute_metrics(*make(rng, 20_000, healthy), n_boot=300)
    names = [m for m in gated.thresholds if m in baseline]
    hits = retrain = 0
    prev = compute_metrics(*make(rng, n, healthy), n_boot=300)
    for _ in range(calls):
        rep = compute_metrics(*make(rng, n, healthy), n_boot=300)
        kinds = bench.call_alerts(rep, baseline, gated, names, prev)
        hits += bool(kinds)
        retrain += "retraining_trigger" in kinds
        prev = rep
    return hits / calls, retrain / calls


@pytest.mark.parametrize(("task", "limit"), [("5-class", 0.02), ("binary", 0.0134)])
def test_false_alerts_of_small_batches_stay_rare(task, limit):
    # goal 1 % of calls; measured here 0.3 % (binary) and 1.5 % (5-class, n = 50: still above
    # the goal, see the issue); the previous rule raised 2.3 % on 5-class n = 50
    rate, retrain = _stable_rates(task, 50, calls=600, seed=91)
    assert rate <= limit, rate
    assert retrain <= 0.005, retrain   # <= 3 of 600 retraining triggers (goal 0.2 %)


def test_a_drop_equal_to_the_threshold_is_caught_quickly():
    """A 5 % accuracy drop with the default 5 % threshold, 1,000-row batches."""
    make, healthy, degrade = bench.TASKS["binary"]
    rng = np.random.default_rng(17)
    gated, _ = bench.detector_settings()
    baseline = compute_metrics(*make(rng, 20_000, healthy), n_boot=300)
    names = [m for m in gated.thresholds if m in baseline]
    delays = []
    for _ in range(20):
        prev = compute_metrics(*make(rng, 1000, healthy), n_boot=300)
        first = None
        for b in range(6):
            rep = compute_metrics(*make(rng, 1000, degrade(healthy, 0.05)), n_boot=300)
            if bench.any_alert(rep, baseline, gated, names, prev):
                first = b
                break
            prev = rep
        delays.append(np.inf if first is None else first)
    assert np.median(delays) <= 1, delays


def test_twenty_segments_in_one_family_rarely_alert():
    out = bench.run_segments("binary", 50, calls=60, seed=5)
    assert out["any_alert"] <= 0.05, out    # 20 x 50 rows per call: was 27 % of calls
