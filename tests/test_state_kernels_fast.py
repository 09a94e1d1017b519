"""The large multiclass state's fused kernels and scheduling give the numbers of the general
path bit for bit: the pair counts counted in the score pass, the placement tables written at
occupied buckets only, and the state itself against its pieces computed the old way."""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from perfkit.metrics import _auc_cov, _kernels, state
from perfkit.metrics._sparse import SparseCounts
from perfkit.metrics._validation import prepare


def _batch(n, k, seed, kind="smooth"):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = softmax(rng.normal(size=(n, k)) * 1.3 + 1.5 * np.eye(k)[y], axis=1)
    if kind == "tied":  # probabilities rounded to 2 decimals: many equal scores
        proba = np.round(proba, 2)
        proba /= proba.sum(axis=1, keepdims=True)
    elif kind == "hard":  # exact 0 and 1 scores, some of them wrong
        m = rng.random(n) < 0.3
        proba[m] = np.eye(k)[y[m]]
        w = rng.random(n) < 0.05
        proba[w] = np.eye(k)[(y[w] + 1) % k]
    elif kind == "absent":  # the last class has no rows
        y = rng.integers(0, k - 1, n)
    elif kind == "single":  # every row of one class: no AUC is defined
        y = np.zeros(n, dtype=np.int64)
    return y, proba


def _same_bits(a, b):
    return np.asarray(a, dtype=np.float64).tobytes() == np.asarray(b, dtype=np.float64).tobytes()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), k=st.integers(3, 10), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["smooth", "tied", "hard", "absent"]))
def test_class_pass3_pairs_equals_separate_passes(n, k, seed, kind):
    y, proba = _batch(n, k, seed, kind)
    y = y.astype(np.int64)
    pred = proba.argmax(axis=1).astype(np.int64)
    want3 = np.zeros((k, _kernels.HIST_BINS, 3), dtype=np.int32)
    joint, mom, p_true = _kernels.class_pass3(proba, y, pred, True, 1e-15, want3)
    pairs = np.zeros((k * (k - 1) // 2, 3, _auc_cov.CELLS, _auc_cov.CELLS), dtype=np.int64)
    want_pairs = _auc_cov._pair_counts(proba, y, _auc_cov._CELL_OF_BUCKET_8, np.zeros_like(pairs))
    got3 = np.zeros_like(want3)
    bins = np.empty((n, k), dtype=np.int32)
    g_joint = _kernels.class_pass3_pairs(proba, y, pred, got3, _auc_cov._CELL_OF_BUCKET_8, pairs, bins)
    again3, again_pairs = np.zeros_like(want3), np.zeros_like(pairs)
    not_kept = np.empty((0, k), dtype=np.int32)
    again_joint = _kernels.class_pass3_pairs(proba, y, pred, again3, _auc_cov._CELL_OF_BUCKET_8, again_pairs, not_kept)
    assert np.array_equal(again3, want3) and np.array_equal(again_pairs, want_pairs)
    assert np.array_equal(again_joint, joint)
    g_mom, g_p_true = _kernels.class_moments_true(proba, y, 1e-15)
    assert np.array_equal(got3, want3)
    assert np.array_equal(bins, _kernels.score_bins(proba.reshape(-1)).reshape(n, k))
    classes = np.arange(k, dtype=np.int64)
    (pk, pc), (nk, nc), _ = _kernels.split_counts3(got3)
    inf_pos, inf_neg = np.zeros((classes.size, _kernels.HIST_BINS)), np.zeros((classes.size, _kernels.HIST_BINS))
    _kernels.placement_tables_sparse(pk, pc, nk, nc, classes, inf_pos, inf_neg)
    for start, stop in ((0, n), (0, n // 2), (n // 2, n)):
        want = _kernels.macro_influence_ss_rows(proba, y, classes, inf_pos, inf_neg, start, stop)
        assert _same_bits(_kernels.macro_influence_ss_bins(bins, y, classes, inf_pos, inf_neg, start, stop), want)
    assert np.array_equal(pairs, want_pairs)
    assert np.array_equal(g_joint, joint)
    assert _same_bits(g_mom, mom) and _same_bits(g_p_true, p_true)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 600), k=st.integers(3, 8), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["smooth", "tied", "hard", "absent"]))
def test_placement_tables_sparse_equal_at_occupied_buckets(n, k, seed, kind):
    y, proba = _batch(n, k, seed, kind)
    y = y.astype(np.int64)
    counts3 = np.zeros((k, _kernels.HIST_BINS, 3), dtype=np.int32)
    _kernels.class_pass3(proba, y, proba.argmax(axis=1).astype(np.int64), True, 1e-15, counts3)
    classes = np.arange(k, dtype=np.int64)[::-1].copy()
    (pk, pc), (nk, nc), _ = _kernels.split_counts3(counts3)
    inf_pos, inf_neg = np.zeros((classes.size, _kernels.HIST_BINS)), np.zeros((classes.size, _kernels.HIST_BINS))
    _kernels.placement_tables_sparse(pk, pc, nk, nc, classes, inf_pos, inf_neg)
    for j, c in enumerate(classes):
        pos, neg = counts3[c, :, 0].astype(np.int64), counts3[c, :, 1].astype(np.int64)
        want_pos, want_neg = _kernels.placement_tables(pos, neg)
        assert _same_bits(inf_pos[j][pos > 0], want_pos[pos > 0])
        assert _same_bits(inf_neg[j][neg > 0], want_neg[neg > 0])
        # what the influence sum reads: every row's own table entry
        want = _kernels.macro_influence_ss_rows(proba, y, classes[j:j + 1], want_pos[None], want_neg[None], 0, n)
        got = _kernels.macro_influence_ss_rows(proba, y, classes[j:j + 1], inf_pos[j:j + 1], inf_neg[j:j + 1], 0, n)
        assert _same_bits(got, want)


def _general_path(y, proba):
    """The state's score fields computed with the general path's functions (one pass each)."""
    p = prepare(y, None, proba, task=None, classes=list(range(proba.shape[1])), positive_label=None,
                proba_tol=1e-4)
    k = proba.shape[1]
    hist_classes = np.arange(k, dtype=np.int64)
    pos, neg, pred, joint, mom, p_true, _ = state._score_pass(p, hist_classes, p.y_idx, True)
    np.log(p_true, out=p_true)
    aucs = [state._exact_auc(p.proba, p.y_idx, c) for c in range(k)]
    vars_ = [float(v) for _, v in aucs]
    return {
        "hist_pos": pos, "hist_neg": neg, "hist_pred": pred, "pred_joint": joint,
        "moments": mom, "logloss": _kernels.moments(p_true),
        "brier": _kernels.moments(state._brier_terms(p)),
        "auc": [float(a) for a, _ in aucs], "var": vars_,
        "ratio": state._macro_auc_var_ratio(p, pos, neg, vars_),
        "pairs": _auc_cov.pair_counts(p.proba, p.y_idx),
    }


@pytest.mark.parametrize("kept", [True, False])
@pytest.mark.parametrize("kind", ["smooth", "tied", "hard", "absent", "single"])
@pytest.mark.parametrize("k", [3, 5, 10])
def test_large_multiclass_state_equals_general_path(monkeypatch, kind, k, kept):
    # the large path from 3,000 rows (its influence sum is split in two halves as the
    # general path splits it from _PARALLEL_ROWS on); with and without the kept buckets
    monkeypatch.setattr(state, "_PARALLEL_ROWS", 3000)
    if not kept:
        monkeypatch.setattr(state, "_KEPT_BUCKETS", 100)
    y, proba = _batch(7001, k, 11 * k, kind)
    s = state.compute_state(y, None, proba, classes=list(range(k)))
    want = _general_path(y, proba)
    for name in ("hist_pos", "hist_neg", "hist_pred"):
        assert getattr(s, name).equals(want[name])
    assert np.array_equal(s.pred_joint, want["pred_joint"])
    assert _same_bits([[m.n, m.mean, m.m2, m.m3, m.m4] for m in s.score_moments], want["moments"])
    n_, mean, m2, m3, m4 = want["logloss"]
    assert (s.logloss.n, s.logloss.mean, s.logloss.m2, s.logloss.m3, s.logloss.m4) == \
        (int(n_), -float(mean), float(m2), -float(m3), float(m4))
    bn, bmean, b2, b3, b4 = want["brier"]
    assert (s.brier.n, s.brier.mean, s.brier.m2, s.brier.m3, s.brier.m4) == \
        (int(bn), float(bmean), float(b2), float(b3), float(b4))
    assert _same_bits(s.auc_exact, want["auc"]) and _same_bits(s.auc_var_exact, want["var"])
    if want["ratio"] is None:
        assert s.auc_var_ratio is None
    else:
        assert _same_bits(s.auc_var_ratio, want["ratio"])
    assert s.auc_pair_counts.equals(SparseCounts.from_dense(want["pairs"]))
    assert math.isnan(s.auc_exact[-1]) == (kind in ("absent", "single"))


def test_lane_runs_every_task_and_raises_errors():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        lane = state._Lane(pool)
        for i in range(50):
            lane.put(i, pow, i, 2)
        assert lane.finish() == {i: i * i for i in range(50)}
        lane = state._Lane(pool)
        lane.put("bad", int, "x")
        lane.put("good", int, "3")
        with pytest.raises(ValueError):
            lane.finish()
        lane.close()


_SPECIALS = [0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, -1e-300, 1.0000001, 5e-324, 1e308, -0.5]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 7), seed=st.integers(0, 2**32 - 1),
       share=st.floats(0.0, 0.4), rounded=st.booleans())
def test_check_proba_equals_the_scan(n, k, seed, share, rounded):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), n)
    if rounded:
        p = np.round(p, 1)
    m = rng.random((n, k)) < share
    p[m] = rng.choice(_SPECIALS, int(m.sum()))
    want, got = _kernels._check_proba_scan(p), _kernels.check_proba(p)
    assert got[0] == want[0]
    assert _same_bits(got[1:], want[1:])


def test_check_proba_keeps_the_first_zero():
    p = np.array([[0.5, 0.5], [-0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.25, 0.75]])
    for q in (p, p[::-1].copy(), np.zeros((9, 1)), -np.zeros((9, 1))):
        want, got = _kernels._check_proba_scan(q), _kernels.check_proba(q)
        assert got[0] == want[0] and _same_bits(got[1:], want[1:])


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_confusion_counts_equal_bincount(n, k, seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, k, n), rng.integers(0, k, n)
    confusion, pred = _kernels.confusion_counts(y, p, k)
    assert confusion.dtype == pred.dtype == np.int64
    assert np.array_equal(confusion, np.bincount(y * k + p, minlength=k * k).reshape(k, k))
    assert np.array_equal(pred, np.bincount(p, minlength=k))
    _, pred_only = _kernels.confusion_counts(np.zeros(0, dtype=np.int64), p, k)
    assert np.array_equal(pred_only, pred)


@settings(max_examples=200, deadline=None)
@given(x=st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=60) | st.lists(st.integers(-3, 3), min_size=1, max_size=200)
       | st.lists(st.integers(0, 9000), min_size=1, max_size=60))
def test_small_int_labels_counts(x):
    a = np.asarray(x, dtype=np.int64)
    lo, hi, counts = _kernels.small_int_labels(a)
    assert (lo, hi) == (a.min(), a.max())
    if int(hi) - int(lo) < 1_000_000:
        assert np.array_equal(counts, np.bincount(a - lo))
    else:
        assert counts.size == 0


def _pair_counts_numpy(proba, y):
    n, k = proba.shape
    cells = _auc_cov._CELL_OF_BUCKET[_kernels.score_bins(proba.reshape(-1))].reshape(n, k)
    out = np.zeros((k * (k - 1) // 2, 3, _auc_cov.CELLS, _auc_cov.CELLS), dtype=np.int64)
    for c in range(k):
        for d in range(c + 1, k):
            g = np.where(y == c, 0, np.where(y == d, 1, 2))
            np.add.at(out[_auc_cov.pair_index(c, d, k)], (g, cells[:, c], cells[:, d]), 1)
    return out


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), k=st.integers(3, 10), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["smooth", "tied", "hard", "absent"]))
def test_pair_counts_equal_numpy(n, k, seed, kind):
    y, proba = _batch(n, k, seed, kind)
    assert np.array_equal(_auc_cov.pair_counts(proba, y), _pair_counts_numpy(proba, y))



@nb.njit(nogil=True, fastmath=_kernels._REASSOC)
def _rowmajor_moments_reference(x, mom):  # the accumulation as first written (sums in arrays)
    n, k = x.shape
    m = np.zeros(k)
    for i in range(n):
        for c in range(k):
            m[c] += x[i, c]
    for c in range(k):
        m[c] /= n
    s = np.zeros((k, 4))
    for i in range(n):
        for c in range(k):
            d = x[i, c] - m[c]
            d2 = d * d
            s[c, 0] += d
            s[c, 1] += d2
            s[c, 2] += d2 * d
            s[c, 3] += d2 * d2
    for c in range(k):
        mean, m2, m3, m4 = _kernels._central(n, m[c], s[c, 0], s[c, 1], s[c, 2], s[c, 3])
        mom[c, 0] = n
        mom[c, 1] = mean
        mom[c, 2] = m2
        mom[c, 3] = m3
        mom[c, 4] = m4


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 3000), k=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["proba", "rounded", "scaled", "constant", "binary", "heavy"]))
def test_rowmajor_moments_equal_the_reference(n, k, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "proba":
        x = rng.dirichlet(np.ones(k) * rng.uniform(0.05, 3), n)
    elif kind == "rounded":
        x = np.round(rng.dirichlet(np.ones(k), n), 2)
    elif kind == "scaled":
        x = rng.normal(size=(n, k)) * 10 ** rng.uniform(-5, 8) + rng.normal() * 10 ** rng.uniform(-3, 9)
    elif kind == "constant":
        x = np.full((n, k), rng.normal())
    elif kind == "binary":
        x = (rng.random((n, k)) < 0.5).astype(float)
    else:
        x = rng.standard_t(2, size=(n, k)) ** 3
    want, got = np.empty((k, 5)), np.empty((k, 5))
    _rowmajor_moments_reference(x, want)
    _kernels._rowmajor_moments(x, got)
    assert _same_bits(got, want)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 6), bins=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), share=st.floats(0.0, 1.0))
def test_split_counts3_equal_flatnonzero(h, bins, seed, share):
    rng = np.random.default_rng(seed)
    counts3 = rng.integers(1, 2**31 - 1, size=(h, bins, 3)).astype(np.int32)
    counts3[rng.random(counts3.shape) >= share] = 0
    for t, (keys, counts) in enumerate(_kernels.split_counts3(counts3)):
        flat = counts3[:, :, t].reshape(-1).astype(np.int64)
        want = np.flatnonzero(flat)
        assert keys.dtype == counts.dtype == np.int64
        assert np.array_equal(keys, want) and np.array_equal(counts, flat[want])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), k=st.integers(2, 9), seed=st.integers(0, 2**32 - 1))
def test_brier_rows_into_equal_brier_rows(n, k, seed):
    y, proba = _batch(n, k, seed, "smooth")
    y = y.astype(np.int64)
    out = np.empty(n)
    _kernels.brier_rows_into(proba, y, out, 0, n // 3)
    _kernels.brier_rows_into(proba, y, out, n // 3, n)
    assert _same_bits(out, _kernels.brier_rows(proba, y))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), k=st.integers(2, 6), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["smooth", "tied", "hard"]))
def test_auc_keys_are_the_score_bits_and_the_label(n, k, seed, kind):
    y, proba = _batch(n, k, seed, kind)
    proba[::7, 0] = -0.0
    for c in range(k):
        keys = np.empty(n, dtype=np.int64)
        _kernels.auc_keys_into(proba, y, c, keys)
        bits = (proba[:, c] + 0.0).view(np.int64)  # -0.0 -> +0.0, then the bits (monotone for p >= 0)
        assert np.array_equal(keys, (bits << 1) | (y == c))
