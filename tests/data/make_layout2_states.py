"""Write ``states_layout2.json``: states as perfkit stored them before layout 3 of sparse counts.

Run once with perfkit at commit 5145125 (the last one writing per-row histograms):
``PYTHONPATH=<checkout of 5145125> python tests/data/make_layout2_states.py``. For every state
the file holds the stored dict and, for each sparse field, its shape and occupied cells
(flat keys and counts as plain JSON lists), which the decoded state must reproduce.
"""

import json
from pathlib import Path

import numpy as np
from scipy.special import softmax

from perfkit.metrics import compute_state, merge_states


def batch(rng, k, n):
    y = rng.integers(0, k, n)
    proba = softmax(rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y], axis=1)
    if k == 2:
        proba = proba[:, 1]
    pred = proba.argmax(1) if k > 2 else (proba > 0.5).astype(int)
    return y, pred, proba


def main() -> None:
    rng = np.random.default_rng(2026)
    states = {}
    for i in range(3):
        states[f"binary_{i}"] = compute_state(*batch(rng, 2, 150), task="binary")
    for i in range(2):
        states[f"multiclass_{i}"] = compute_state(*batch(rng, 4, 60), task="multiclass", classes=[0, 1, 2, 3])
    states["binary_wide_counts"] = merge_states([states["binary_0"]] * 300)  # counts above 255
    y, pred, proba = batch(rng, 2, 80)
    proba[:5] = [1e-300, 1e-20, 0.5, 1.0 - 2**-53, 0.0]  # coarse bins, bucket 0, the top bucket
    states["binary_extremes"] = compute_state(y, pred, proba, task="binary")
    tiny = compute_state([1, 1, 0, 0], [0, 1, 0, 1], [1e-300, 0.999, 2e-300, 0.9999], task="binary")
    states["binary_wide_gaps"] = tiny  # bins more than 2**16 apart: four-byte gaps
    states["binary_huge_counts"] = merge_states([tiny] * 70_000)  # four-byte counts
    states["multiclass_unlabelled"] = states["multiclass_0"].prediction_part()
    y = rng.normal(size=100)
    states["regression"] = compute_state(y, y + rng.normal(size=100), task="regression")
    out = {}
    for name, s in states.items():
        cells = {}
        for field in ("hist_pos", "hist_neg", "hist_pred", "pred_joint", "auc_pair_counts"):
            v = getattr(s, field, None)
            if v is not None:
                cells[field] = {"shape": list(v.shape), "keys": v.keys.astype(int).tolist(),
                                "counts": v.counts.astype(int).tolist()}
        out[name] = {"state": s.to_dict(), "cells": cells}
    path = Path(__file__).with_name("states_layout2.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
