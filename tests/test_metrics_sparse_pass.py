"""The small-batch score histograms built in one compiled pass (radix sort per histogram
row) equal the ones built by sorting the selected keys (``SparseCounts.from_keys``)."""

from __future__ import annotations

import numpy as np
import pytest

from perfkit.metrics import _kernels
from perfkit.metrics._sparse import SparseCounts
from perfkit.metrics.state import compute_state, state_from_dict


def _by_sorting(keys, y_idx, p_idx, classes, labelled, shape):
    is_pred = p_idx[:, None] == classes[None, :]
    if labelled:
        is_pos = y_idx[:, None] == classes[None, :]
        pos, neg = SparseCounts.from_keys(shape, keys[is_pos]), SparseCounts.from_keys(shape, keys[~is_pos])
    else:
        pos, neg = SparseCounts.empty(shape), SparseCounts.from_keys(shape, keys.reshape(-1))
    return pos, neg, SparseCounts.from_keys(shape, keys[is_pred])


@pytest.mark.parametrize("k", [2, 3, 5, 12])
@pytest.mark.parametrize("n", [1, 2, 17, 600, 9000])
@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("spread", ["all", "narrow"])
def test_radix_pass_equals_sorting(k, n, labelled, spread):
    rng = np.random.default_rng(k * 1000 + n)
    bins = _kernels.HIST_BINS
    h = 1 if k == 2 else k
    classes = np.array([1] if k == 2 else list(range(k)), dtype=np.int64)
    # buckets over the whole range, with many repeats (a few distinct scores) and the edges
    buckets = rng.integers(0, bins, size=(n, h))
    buckets[: n // 3] = rng.choice([0, 1, bins - 1, bins // 2], size=(n // 3, h))
    if spread == "narrow":  # scores of a real model: the dense counters, not the radix sort
        buckets = rng.integers(0, 3 * n + 50, size=(n, h)) + rng.integers(0, bins - 3 * n - 50, size=h)
        buckets[: n // 3] = buckets[0]
        if h > 1:  # one histogram row spread out: rows of both kinds in one pass
            buckets[:, -1] = rng.integers(0, bins, size=n)
    keys = buckets + np.arange(h, dtype=np.int64) * bins
    y_idx = rng.integers(0, k, n) if labelled else np.zeros(1, dtype=np.int64)
    p_idx = rng.integers(0, k, n)
    shape = (h, bins)
    got = [SparseCounts(shape, kk, cc) for kk, cc in
           _kernels.sparse_score_hists(keys, y_idx, p_idx, classes, labelled, bins)]
    want = _by_sorting(keys, y_idx, p_idx, classes, labelled, shape)
    for g, w in zip(got, want, strict=True):
        assert g.keys.dtype == w.keys.dtype and g.counts.dtype == w.counts.dtype
        assert np.array_equal(g.keys, w.keys) and np.array_equal(g.counts, w.counts)
        assert g.to_dict() == w.to_dict()
    assert sum(int(g.counts.sum()) for g in got[:2]) == n * h


def test_small_batch_states_round_trip_and_merge():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 800)
    proba = rng.dirichlet(np.ones(4), 800)
    s = compute_state(y, proba.argmax(1), proba)
    assert state_from_dict(s.to_dict()).to_dict() == s.to_dict()
    assert int(np.asarray(s.hist_pos).sum()) == 800 and int(np.asarray(s.hist_neg).sum()) == 3 * 800


@pytest.mark.parametrize("k", [3, 4, 5, 7, 9])
@pytest.mark.parametrize("n", [1, 50, 20_000])
def test_multiclass_brier_terms_equal_numpy_bit_for_bit(k, n):
    """The per-row multiclass Brier terms (a compiled pass where it reproduces numpy's
    summation order) are numpy's ``einsum`` terms exactly, and so are their moments."""
    from perfkit.metrics import state as state_module
    from perfkit.metrics._validation import prepare

    rng = np.random.default_rng(k * 7 + n)
    proba = rng.dirichlet(np.full(k, 0.4), n)
    proba[: n // 4] = np.round(proba[: n // 4], 2)
    proba[: n // 4] /= proba[: n // 4].sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    p = prepare(y, None, proba, task="multiclass", classes=list(range(k)), positive_label=None, proba_tol=1e-4)
    want = np.einsum("ij,ij->i", p.proba, p.proba) - 2.0 * p.proba[np.arange(p.n), p.y_idx] + 1.0
    got = state_module._brier_terms(p)
    assert got.dtype == want.dtype and np.array_equal(got.view(np.int64), want.view(np.int64))
    brier = compute_state(y, proba.argmax(axis=1), proba, classes=list(range(k))).brier
    n_, mean, m2, m3, m4 = _kernels.moments(want)
    assert (brier.n, brier.mean, brier.m2, brier.m3, brier.m4) == (n_, mean, m2, m3, m4)


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("k", [3, 5])
def test_interleaved_counts_equal_three_dense_histograms(labelled, k):
    """Large multiclass batches count (pos, neg, pred) side by side in one int32 array; the
    sparse histograms read from it equal those of the three dense int64 arrays."""
    rng = np.random.default_rng(k + labelled)
    n, bins = 40_000, _kernels.HIST_BINS
    proba = rng.dirichlet(np.full(k, 0.5), n)
    proba[:100] = np.eye(k)[rng.integers(0, k, 100)]  # scores 0 and 1: the edge buckets
    y = rng.integers(0, k, n) if labelled else np.zeros(1, dtype=np.int64)
    p_idx = proba.argmax(axis=1)
    classes = np.arange(k, dtype=np.int64)
    empty = np.zeros((0, 0), dtype=np.int64)
    dense = [np.zeros((k, bins), dtype=np.int64) for _ in range(3)]
    want = _kernels.class_pass(proba, y, p_idx, classes, labelled, 1e-15, *dense, empty)
    counts3 = np.zeros((k, bins, 3), dtype=np.int32)
    got = _kernels.class_pass3(proba, y, p_idx, labelled, 1e-15, counts3)
    for a, b in zip(want[3:], got, strict=True):  # joint counts, moments, clipped true-class scores
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for d, (kk, cc) in zip(dense, _kernels.split_counts3(counts3), strict=True):
        sparse, ref = SparseCounts((k, bins), kk, cc), SparseCounts.from_dense(d)
        assert np.array_equal(sparse.keys, ref.keys) and np.array_equal(sparse.counts, ref.counts)
        assert sparse.to_dict() == ref.to_dict() and int(cc.sum()) == int(d.sum())
    assert int(want[1].sum()) == ((k - 1) * n if labelled else k * n)


@pytest.mark.parametrize("n", [1, 3, 1025, 300_000])
def test_regression_sums_on_two_threads_equal_one_pass(n):
    """A large regression batch's moment sums run as parts on two threads; the parts are the
    one-pass kernel's loops, so the state is the same to the bit with or without the pool."""
    from concurrent.futures import ThreadPoolExecutor

    from perfkit.metrics.state import _regression_part

    rng = np.random.default_rng(n)
    y = rng.normal(size=n) * 50 + 1e4
    y[: n // 4] = 0.0  # zero targets: the MAPE count
    yhat = y + rng.standard_t(3, size=n)
    with ThreadPoolExecutor(2) as pool:
        threaded = _regression_part(y, yhat, pool)
    alone = _regression_part(y, yhat)
    assert threaded.to_dict() == alone.to_dict()
    mom, shift, c1, c2 = _kernels.regression_moments(y, yhat)
    assert (alone.e.to_list(), alone.ape.to_list(), alone.shift, alone.cross1, alone.cross2) == \
        (mom[2].tolist(), mom[5].tolist(), shift, c1, c2)


@pytest.mark.parametrize("k", [3, 5, 8])
@pytest.mark.parametrize("n", [40, 3000])
def test_sparse_macro_influence_equals_the_dense_tables(k, n):
    """The small-batch macro-AUC influence (``sparse_influence``: occupied buckets only) is
    the sum over rows of the squared influence read from the dense placement tables."""
    from perfkit.metrics._validation import prepare
    from perfkit.metrics.state import _macro_influence_ss_sparse, _score_pass

    rng = np.random.default_rng(k + n)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.full(k, 0.5), n)
    proba[: n // 5] = np.round(proba[: n // 5], 2)  # ties
    proba /= proba.sum(axis=1, keepdims=True)
    p = prepare(y, None, proba, task="multiclass", classes=list(range(k)), positive_label=None, proba_tol=1e-4)
    pos, neg, _, _, _, _, keys = _score_pass(p, np.arange(k), p.y_idx, True)
    assert keys is not None  # the sparse path
    defined = [j for j in range(k) if j != 1]  # a class left out, as an undefined AUC is
    got = _macro_influence_ss_sparse(keys, p.y_idx, pos, neg, defined)
    dense_pos, dense_neg = np.asarray(pos), np.asarray(neg)
    tables = [_kernels.placement_tables(dense_pos[j], dense_neg[j]) for j in defined]
    want = _kernels.macro_influence_ss_rows(p.proba, p.y_idx, np.asarray(defined, dtype=np.int64),
                                            np.stack([t[0] for t in tables]), np.stack([t[1] for t in tables]), 0, n)
    assert got == pytest.approx(want, rel=1e-11)


@pytest.mark.parametrize("seed", range(6))
def test_cell_means_from_occupied_buckets_equal_the_dense_tables(seed):
    """The macro AUC's per-cell mean influences (``_auc_cov._class_cell_means``, occupied
    buckets only) are the dense placement tables averaged per cell with ``np.bincount``, bit
    for bit, for sparse and dense histograms, including a class with no positives."""
    from perfkit.metrics import _auc_cov

    rng = np.random.default_rng(seed)
    k, n = 4, int(rng.integers(20, 5000))
    y = rng.integers(0, k, n)
    y[y == 3] = 0 if seed % 2 else 3  # every other seed: class 3 has no rows
    proba = rng.dirichlet(np.full(k, 0.4), n)
    proba[: n // 4] = np.round(proba[: n // 4], 2)
    st = compute_state(y, proba.argmax(1), proba / proba.sum(1, keepdims=True), classes=list(range(k)))
    cells = _auc_cov._CELL_OF_BUCKET
    for c in range(k):
        pos, neg = np.asarray(st.hist_pos[c]), np.asarray(st.hist_neg[c])
        inf_pos, inf_neg = _kernels.placement_tables(pos, neg)

        def mean(w, v):
            num = np.bincount(cells, w * v, minlength=_auc_cov.CELLS)
            den = np.bincount(cells, w, minlength=_auc_cov.CELLS)
            return np.divide(num, den, out=np.zeros(_auc_cov.CELLS), where=den > 0)

        want = (mean(pos.astype(float), inf_pos), mean(neg.astype(float), inf_neg))
        for hp, hn in ((st.hist_pos, st.hist_neg), (np.asarray(st.hist_pos), np.asarray(st.hist_neg))):
            got = _auc_cov._class_cell_means(hp, hn, c)
            assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), c
