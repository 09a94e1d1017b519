"""The decision's array core (what ``assess`` calls for one tracking call) agrees with the
frame ``decide`` (what ``replay`` and the reports call) on random frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from perfkit.analysis import decide
from perfkit.analysis._decide import DECISION_COLUMNS, _decide_arrays
from perfkit.analysis.degradation import _decide_records
from perfkit.config import DetectionSettings

METRICS = ["accuracy", "f1_macro", "roc_auc", "log_loss", "mae", "mse", "precision_macro"]
PROPORTIONS = {"accuracy"}


def random_rows(rng: np.random.Generator, families: int) -> list[dict]:
    """Rows of ``families`` tracking calls: batch, window and floor scopes, segments (None
    for the whole model), counts for proportions, missing values and a few exotic cases."""
    rows = []
    for fam in range(families):
        segs = [None] + [f"s{j}" for j in range(int(rng.integers(0, 3)))]
        for seg in segs:
            for m in rng.choice(METRICS, size=int(rng.integers(1, 5)), replace=False):
                for scope in ("batch", "window") if rng.random() < 0.5 else ("batch",):
                    base = float(rng.uniform(0.3, 0.95))
                    n = int(rng.choice([30, 80, 150, 2000]))
                    value = base * float(rng.uniform(0.7, 1.2))
                    row = {"family": fam, "segment": seg, "metric": str(m), "scope": scope, "value": value,
                           "se": float(rng.uniform(0.001, 0.05)), "n": n, "baseline": base,
                           "baseline_se": float(rng.uniform(0.001, 0.03))}
                    if m in PROPORTIONS:
                        row.update(successes=round(min(value, 1.0) * n), trials=n,
                                   baseline_successes=round(base * 5000), baseline_trials=5000)
                    u = rng.random()
                    if u < 0.05:
                        row["value"] = math.nan
                    elif u < 0.08:
                        row["baseline"] = 0.0
                    elif u < 0.10:
                        row["se"] = None
                    rows.append(row)
            if rng.random() < 0.7:
                rows.append({"family": fam, "segment": seg, "metric": "performance_score", "scope": "floor",
                             "value": float(rng.uniform(0.3, 0.9)), "se": float(rng.uniform(0.005, 0.05))})
    return rows


SETTINGS = [
    DetectionSettings(thresholds={m: 0.05 for m in METRICS}, window_batches=3),
    DetectionSettings(thresholds={m: 0.02 for m in METRICS}, gating="significance", fdr_method="holm"),
    DetectionSettings(thresholds={m: 0.05 for m in METRICS}, gating="none", threshold_mode="absolute"),
]


def same(a, b) -> bool:
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a.shape != b.shape:
        return False
    def missing(v) -> bool:  # a frame shows a missing string as NaN, the core as None
        return v is None or (isinstance(v, float) and math.isnan(v))

    for x, y in zip(a, b, strict=True):
        if missing(x) and missing(y):
            continue
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or not (x == y or (math.isnan(x) and math.isnan(y))):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", range(4))
def test_array_core_equals_frame_decide(settings, seed):
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, families=int(rng.integers(1, 4)))
    frame = decide(pd.DataFrame(rows), settings)
    cols = {k: [r.get(k) for r in rows] for k in ("family", "segment", "metric", "scope", "value", "se", "n",
                                                  "successes", "trials", "baseline", "baseline_se",
                                                  "baseline_successes", "baseline_trials")}
    arrays = _decide_arrays(cols, settings)
    for name in DECISION_COLUMNS:
        assert same(frame[name].to_numpy(object), arrays[name]), name
    # assess's records: the same decisions, row by row
    records = _decide_records(rows, settings)
    for name in DECISION_COLUMNS:
        assert same(frame[name].to_numpy(object), [r[name] for r in records]), name
    assert frame["degraded"].any() or frame["p_value"].notna().any()  # the frames do test something


@pytest.mark.parametrize("settings", SETTINGS)
def test_large_frames_decide_as_their_families_alone(settings):
    """Above 256 rows the core groups with pandas, below with dicts: a long frame of many
    families decides each family exactly as that family decided alone."""
    rng = np.random.default_rng(7)
    rows = random_rows(rng, families=40)
    assert len(rows) > 256
    whole = decide(pd.DataFrame(rows), settings)
    assert whole["degraded"].any()
    for fam in range(40):
        mine = [r for r in rows if r["family"] == fam]
        alone = decide(pd.DataFrame(mine), settings)
        part = whole[whole["family"] == fam]
        for name in DECISION_COLUMNS:
            assert same(part[name].to_numpy(object), alone[name].to_numpy(object)), (fam, name)


def test_block_gate_is_the_formula():
    """The block Simes gate (one implementation for one family and for many) equals the
    formula written out: per family, min over its blocks of (m / (m_b w_b)) min_j m_b p_(j) / j,
    each block's Simes p and the gate capped at 1."""
    from perfkit.analysis._decide import _block_gate

    rng = np.random.default_rng(11)
    for _ in range(200):
        n_fam = int(rng.integers(1, 5))
        fam = np.sort(rng.integers(0, n_fam, int(rng.integers(1, 30))))
        fam = np.unique(fam, return_inverse=True)[1]
        blocks = fam * 10 + rng.integers(0, 3, len(fam))
        w_of_block = {b: float(rng.uniform(0.2, 2.0)) for b in set(blocks.tolist())}
        w = np.array([w_of_block[b] for b in blocks.tolist()])
        p = rng.uniform(0, 1, len(fam)) ** 3
        expected = []
        for f in range(int(fam.max()) + 1):
            m = float(np.sum(fam == f))
            gate = math.inf
            for b in sorted(set(blocks[fam == f].tolist())):
                ps = sorted(p[blocks == b].tolist())
                simes = min(min(len(ps) * x / (j + 1) for j, x in enumerate(ps)), 1.0)
                gate = min(gate, simes * m / (len(ps) * w_of_block[b]))
            expected.append(min(gate, 1.0))
        np.testing.assert_allclose(_block_gate(p, fam, blocks, w), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["fdr_bh", "fdr_by", "holm", "bonferroni", "none"])
def test_a_family_adjusts_alone_as_among_others(method):
    """The one-family paths of ``_family_adjust`` (a single test; one family without the
    padded matrix) give exactly what the many-family matrix gives that family's rows."""
    from perfkit.analysis._decide import _family_adjust

    rng = np.random.default_rng(3)
    for _ in range(300):
        m = int(rng.integers(1, 12))
        p = rng.uniform(0, 1, m) ** 3
        overall = rng.random(m) < rng.choice([0.0, 0.5, 1.0])
        blocks = rng.integers(0, 3, m)
        mask = np.ones(m, bool)
        alone = _family_adjust(p, np.zeros(m, int), overall, mask, method, blocks)
        # the same family beside another one (codes 0 and 1): the matrix path
        q = rng.uniform(0, 1, 4)
        both = _family_adjust(np.r_[p, q], np.r_[np.zeros(m, int), np.ones(4, int)], np.r_[overall, np.ones(4, bool)],
                              np.ones(m + 4, bool), method, np.r_[blocks, np.full(4, 7)])
        assert np.array_equal(alone, both[:m]), (m, method)
