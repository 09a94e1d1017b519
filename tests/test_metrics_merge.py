"""Invariances over ALL registered metrics: merge == concatenation, order, streaming, round trips."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit, softmax
from sklearn import metrics as skm

from perfkit.exceptions import StateError
from perfkit.metrics import (
    _kernels,
    compute_state,
    evaluate,
    merge_state_dicts,
    merge_states,
    metric_names,
    state_from_dict,
)

RTOL = 1e-9
ATOL = 1e-12
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TASKS = ("binary", "multiclass", "regression")
#: Metrics whose value comes from counts or moments only (merge must equal concatenation);
#: ``roc_auc`` is the one approximate metric (histograms) and is checked against its bound.
APPROXIMATE = {"roc_auc"}


def make_batch(task: str, n: int, rng: np.random.Generator, *, labels=None):
    if task == "regression":
        y = rng.normal(size=n) * 2 + 1
        y[rng.random(n) < 0.05] = 0.0
        return y, y + rng.normal(size=n), None
    k = 2 if task == "binary" else 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = softmax(logits, axis=1)
    pred = np.where(rng.random(n) < 0.2, rng.integers(0, k, n), proba.argmax(1))
    if labels is not None:
        y, pred = np.asarray(labels)[y], np.asarray(labels)[pred]
    return y, pred, (proba[:, 1] if task == "binary" else proba)


def state_of(task, y, pred, proba, **kw):
    classes = None if task == "regression" else ([0, 1] if task == "binary" else [0, 1, 2, 3])
    return compute_state(y, pred, proba, task=task, classes=kw.pop("classes", classes), **kw)


def split_points(n: int, parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False))
    return np.split(np.arange(n), cuts)


def assert_reports_equal(merged, whole, *, exact_intervals: bool = True) -> None:
    assert set(merged) == set(whole)
    for name in whole:
        a, b = merged[name], whole[name]
        if name in APPROXIMATE:
            if math.isnan(b.value):
                assert math.isnan(a.value)
                continue
            assert abs(a.value - b.value) <= a.error_bound + 1e-12, (a, b)
            continue
        if math.isnan(b.value):
            assert math.isnan(a.value) and a.reason == b.reason, (name, a, b)
            continue
        assert a.value == pytest.approx(b.value, rel=RTOL, abs=ATOL), (name, a.value, b.value)
        assert a.n == b.n, name
        if exact_intervals:
            for f in ("ci_lower", "ci_upper", "se"):
                x, y = getattr(a, f), getattr(b, f)
                assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-7, abs=1e-12), (name, f)


def test_metric_list_covers_every_task():
    assert {n for t in TASKS for n in metric_names(t)} == set(
        metric_names()
    ), "a registered metric belongs to no task"
    for t in TASKS:
        assert "sample_count" in metric_names(t)


@HYP
@given(st.sampled_from(TASKS), st.integers(0, 2**32 - 1), st.integers(2, 5), st.integers(20, 400))
def test_merge_of_random_split_equals_whole(task, seed, parts, n):
    rng = np.random.default_rng(seed)
    y, pred, proba = make_batch(task, n, rng)
    whole = evaluate(state_of(task, y, pred, proba), n_boot=200)
    pieces = [
        state_of(task, y[ix], pred[ix], None if proba is None else proba[ix])
        for ix in split_points(n, parts, rng)
    ]
    merged = merge_states(pieces)
    assert merged.n == n and merged.n_batches == parts
    assert set(whole) == set(metric_names(task))
    assert_reports_equal(evaluate(merged, n_boot=200), whole)


@pytest.mark.parametrize("task", TASKS)
def test_order_invariance(task):
    rng = np.random.default_rng(11)
    y, pred, proba = make_batch(task, 600, rng)
    ixs = split_points(600, 4, rng)
    states = [state_of(task, y[i], pred[i], None if proba is None else proba[i]) for i in ixs]
    ref = evaluate(merge_states(states), n_boot=200)
    for perm in itertools.permutations(range(4)):
        got = evaluate(merge_states([states[i] for i in perm]), n_boot=200)
        for name in ref:
            assert got[name].value == pytest.approx(ref[name].value, rel=RTOL, abs=ATOL), name
    # histograms and counts merge bit-exactly whatever the order
    if task != "regression":
        a = merge_states(states)
        b = merge_states(states[::-1])
        assert np.array_equal(a.hist_pos, b.hist_pos) and np.array_equal(a.confusion, b.confusion)


@pytest.mark.parametrize("task", TASKS)
def test_streamed_equals_batch(task):
    rng = np.random.default_rng(12)
    n = 3000
    y, pred, proba = make_batch(task, n, rng)
    whole = evaluate(state_of(task, y, pred, proba), n_boot=200)
    acc = None
    for ix in np.array_split(np.arange(n), 150):  # 150 batches of 20 rows
        s = state_of(task, y[ix], pred[ix], None if proba is None else proba[ix])
        acc = s if acc is None else acc.merge(s)
    assert acc.n_batches == 150
    assert_reports_equal(evaluate(acc, n_boot=200), whole)
    if task != "regression":
        auc = evaluate(acc, metrics=["roc_auc"])["roc_auc"]
        assert abs(auc.value - whole["roc_auc"].value) < 1e-4


@pytest.mark.parametrize("task", TASKS)
def test_pickle_and_json_round_trips_are_exact(task):
    rng = np.random.default_rng(13)
    y, pred, proba = make_batch(task, 500, rng)
    single = state_of(task, y, pred, proba)
    merged = merge_states([single, state_of(task, y[:77], pred[:77], None if proba is None else proba[:77])])
    unlabelled = state_of(task, None, pred, proba)
    for s in (single, merged, unlabelled):
        for back in (
            pickle.loads(pickle.dumps(s)),
            state_from_dict(s.to_dict()),
            state_from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False))),
        ):
            assert type(back) is type(s) and back.equals(s)
            a, b = evaluate(back, n_boot=200), evaluate(s, n_boot=200)
            assert a.to_dict() == b.to_dict()
    d = merge_state_dicts([single.to_dict(), single.to_dict()])
    assert state_from_dict(d).equals(single.merge(single))


def test_string_labels_merge():
    rng = np.random.default_rng(14)
    labels = ["a", "b", "c", "d"]
    y, pred, proba = make_batch("multiclass", 400, rng, labels=labels)
    whole = evaluate(compute_state(y, pred, proba, classes=labels), n_boot=200)
    parts = [compute_state(y[i], pred[i], proba[i], classes=labels) for i in np.array_split(np.arange(400), 3)]
    assert_reports_equal(evaluate(merge_states(parts), n_boot=200), whole)


def test_offset_regression_merges_without_cancellation():
    rng = np.random.default_rng(15)
    n = 20_000
    y = 1e6 + rng.normal(size=n)
    yhat = y - 0.3 * (y - 1e6) + rng.normal(scale=0.5, size=n)
    parts = [compute_state(y[i], yhat[i]) for i in split_points(n, 5, rng)]
    rep = evaluate(merge_states(parts))
    assert rep["r2"].value == pytest.approx(skm.r2_score(y, yhat), rel=RTOL)
    assert rep["mse"].value == pytest.approx(skm.mean_squared_error(y, yhat), rel=RTOL)
    assert rep["prediction_variance"].value == pytest.approx(np.var(yhat), rel=RTOL)
    whole = evaluate(compute_state(y, yhat))
    assert rep["r2"].se == pytest.approx(whole["r2"].se, rel=1e-6)


def _auc_scenarios(rng: np.random.Generator, n: int):
    y = rng.integers(0, 2, n)
    yield "realistic", y, expit(rng.normal(size=n) + 1.5 * y - 0.75)
    yield "overconfident", y, expit(np.where(y == 1, rng.normal(8, 3, n), rng.normal(-8, 3, n)))
    r = (rng.random(n) < 0.01).astype(int)
    yield "rare_1pct", r, expit(rng.normal(-4, 1.5, n) + 3 * r)
    yield "uniform", y, np.clip(rng.random(n) * 0.6 + 0.4 * y, 0, 1)
    yield "ties", y, np.round(rng.random(n) * 0.6 + 0.4 * y, 2)


@pytest.mark.parametrize(("n", "reps"), [(1_000, 20), (5_000, 5), (50_000, 1)])
def test_histogram_auc_of_merged_states(n, reps):
    rng = np.random.default_rng(16)
    for name, y, s in (sc for _ in range(reps) for sc in _auc_scenarios(rng, n)):
        if y.min() == y.max():
            continue
        exact = skm.roc_auc_score(y, s)
        merged = merge_states([compute_state(y[i], None, s[i], classes=[0, 1]) for i in split_points(n, 3, rng)])
        auc = evaluate(merged, metrics=["roc_auc"])["roc_auc"]
        assert auc.reason == "from_histograms"
        assert abs(auc.value - exact) <= auc.error_bound + 1e-12, name
        if min(y.sum(), n - y.sum()) >= 50:  # 10 positives: one tied pair is already 5e-5
            assert abs(auc.value - exact) < 1e-4, (name, auc.value - exact)
        assert auc.ci_lower <= auc.value <= auc.ci_upper


def test_histogram_auc_multiclass():
    rng = np.random.default_rng(17)
    y, pred, proba = make_batch("multiclass", 20_000, rng)
    exact = skm.roc_auc_score(y, proba, multi_class="ovr")
    merged = merge_states([compute_state(y[i], pred[i], proba[i]) for i in split_points(20_000, 4, rng)])
    auc = evaluate(merged, metrics=["roc_auc"])["roc_auc"]
    assert abs(auc.value - exact) <= auc.error_bound + 1e-12
    assert abs(auc.value - exact) < 1e-4


def test_score_bins_are_monotone():
    p = np.sort(np.concatenate([np.random.default_rng(18).random(50_000), [0.0, 1e-300, 0.5, 1 - 1e-16, 1.0]]))
    b = _kernels.score_bins(p)
    assert np.all(np.diff(b) >= 0)
    assert b.min() >= 0 and b.max() < _kernels.HIST_BINS


def test_prediction_only_states_merge():
    rng = np.random.default_rng(19)
    y, pred, proba = make_batch("binary", 300, rng)
    a = state_of("binary", None, pred[:100], proba[:100])
    b = state_of("binary", y[100:], pred[100:], proba[100:]).prediction_part()
    m = a.merge(b)
    whole = state_of("binary", None, pred, proba)
    assert np.array_equal(m.hist_neg, whole.hist_neg) and np.array_equal(m.pred_counts, whole.pred_counts)
    assert not np.any(m.hist_pos)
    rep = evaluate(m)
    assert set(rep) == {"sample_count", "prediction_variance"}
    assert rep["prediction_variance"].value == pytest.approx(np.var(proba), rel=RTOL)
    with pytest.raises(StateError):
        a.merge(state_of("binary", y[:10], pred[:10], proba[:10]))


def test_incompatible_states_raise_state_error():
    rng = np.random.default_rng(20)
    yb, pb, sb = make_batch("binary", 50, rng)
    ym, pm, sm = make_batch("multiclass", 50, rng)
    yr, pr, _ = make_batch("regression", 50, rng)
    b, m, r = state_of("binary", yb, pb, sb), state_of("multiclass", ym, pm, sm), compute_state(yr, pr)
    for x, z in ((b, m), (b, r), (r, b)):
        with pytest.raises(StateError):
            merge_states([x, z])
    # batches with and without scores share a history: counts over all rows, scores over scored ones
    mixed = merge_states([b, state_of("binary", yb, pb, None)])
    assert mixed.n == 100 and mixed.n_scored == 50 and mixed.confusion.sum() == 100
    with pytest.raises(StateError):
        merge_states([])
    with pytest.raises(StateError):
        state_from_dict({"kind": "nonsense"})


def test_dicts_without_newer_optional_fields_still_decode():
    rng = np.random.default_rng(21)
    y, pred, proba = make_batch("multiclass", 300, rng)
    s = state_of("multiclass", y, pred, proba)
    assert s.auc_var_ratio is not None and s.auc_var_ratio > 0
    d = s.to_dict()
    del d["auc_var_ratio"]
    old = state_from_dict(d)
    assert old.auc_var_ratio is None
    assert evaluate(old)["roc_auc"].value == evaluate(s)["roc_auc"].value


def test_histograms_of_another_layout_do_not_merge():
    rng = np.random.default_rng(22)
    y, pred, proba = make_batch("binary", 100, rng)
    s = state_of("binary", y, pred, proba)
    old = dataclasses.replace(  # the layout of MANT_BITS = 7
        s, hist_pos=np.zeros((1, 9986), dtype=np.int64), hist_neg=np.ones((1, 9986), dtype=np.int64)
    )
    with pytest.raises(StateError, match="layouts"):
        s.merge(old)
    d = s.to_dict()
    d["hist_pos"]["bins"] = 10  # indices out of range: malformed
    with pytest.raises(StateError, match="malformed"):
        state_from_dict(d)


def _confident_scores(rng, n, centre, spread, shift):
    """Binary scores of a very confident model: logits around ``centre`` (far from 0)."""
    y = rng.integers(0, 2, n)
    z = rng.normal(centre, spread, n) + shift * y
    return y, expit(z)


@pytest.mark.parametrize(
    ("centre", "spread", "shift"),
    [(-40.0, 8.0, 6.0),      # scores ~1e-17 .. 1e-12 (the case: below 2**-40)
     (-400.0, 60.0, 40.0),   # down to ~1e-300
     (30.0, 3.0, 2.0),       # up to 1 - 1e-16 on the other side
     (-15.0, 25.0, 8.0)],    # across the whole range
)
def test_merged_auc_exact_for_very_confident_scores(centre, spread, shift):
    rng = np.random.default_rng(int(abs(centre) * 7 + spread))
    y, p = _confident_scores(rng, 20_000, centre, spread, shift)
    keep = (p >= 1e-300) & (p <= 1 - 1e-16)
    y, p = y[keep], p[keep]
    exact = skm.roc_auc_score(y, p)
    parts = split_points(y.size, 10, rng)
    merged = merge_states([compute_state(y[i], None, p[i], classes=[0, 1]) for i in parts])
    auc = evaluate(merged, metrics=["roc_auc"])["roc_auc"]
    assert abs(auc.value - exact) < 1e-4, (auc.value, exact)
    assert abs(auc.value - exact) <= auc.error_bound + 1e-12
    # the same through the stored form (sparse dicts, bulk merge)
    fast = merge_state_dicts([compute_state(y[i], None, p[i], classes=[0, 1]).to_dict() for i in parts])
    back = state_from_dict(fast)
    for name in ("hist_pos", "hist_neg", "hist_pred", "confusion"):
        np.testing.assert_array_equal(getattr(back, name), getattr(merged, name))


def test_merged_multiclass_auc_exact_for_very_confident_scores():
    rng = np.random.default_rng(31)
    n, k = 20_000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 40, (n, k)) + 30 * np.eye(k)[y]
    proba = softmax(logits, axis=1)
    exact = skm.roc_auc_score(y, proba, multi_class="ovr")
    merged = merge_states([compute_state(y[i], None, proba[i]) for i in split_points(n, 10, rng)])
    assert abs(evaluate(merged, metrics=["roc_auc"])["roc_auc"].value - exact) < 1e-4


def test_states_of_the_first_histogram_layout_are_read_and_merge():
    rng = np.random.default_rng(32)
    y, pred, proba = make_batch("binary", 2_000, rng)
    s = state_of("binary", y, pred, proba)
    # write the state in the first layout (V1_BINS buckets, q < 2**-40 in bucket 0)
    b = _kernels.score_bins(proba)
    half = np.minimum(b, _kernels.HIST_BINS - 1 - b)
    old_half = np.where(half <= _kernels.COARSE_SPAN, 0, half - _kernels.COARSE_SPAN)
    old = np.where(b < _kernels.HIST_HALF, old_half, _kernels.V1_BINS - 1 - old_half)
    pos = np.bincount(old[y == 1], minlength=_kernels.V1_BINS)[None, :]
    neg = np.bincount(old[y != 1], minlength=_kernels.V1_BINS)[None, :]
    d = dataclasses.replace(s, hist_pos=pos, hist_neg=neg, hist_pred=None).to_dict()
    back = state_from_dict(d)
    assert back.hist_pos.shape[1] == _kernels.HIST_BINS
    np.testing.assert_array_equal(back.hist_pos, s.hist_pos)  # no score below 2**-40 here
    assert back.hist_pred is None
    merged = back.merge(s)  # merges with a current state (prediction histogram dropped)
    assert merged.hist_pred is None and merged.n == 2 * s.n
    fast = state_from_dict(merge_state_dicts([d, s.to_dict()]))
    np.testing.assert_array_equal(fast.hist_neg, merged.hist_neg)
    assert evaluate(back)["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba), abs=1e-4)


def test_prediction_histogram_is_the_joint_of_predicted_class_and_score_bin():
    rng = np.random.default_rng(33)
    for task in ("binary", "multiclass"):
        y, pred, proba = make_batch(task, 3_000, rng)
        s = state_of(task, None, pred, proba)
        p2 = np.column_stack([1 - proba, proba]) if task == "binary" else proba
        for j, c in enumerate(s.hist_classes):
            ref = np.bincount(_kernels.score_bins(np.ascontiguousarray(p2[pred == c, c])), minlength=_kernels.HIST_BINS)
            np.testing.assert_array_equal(s.hist_pred[j], ref)
        parts = split_points(3_000, 3, rng)
        m = merge_states([state_of(task, None, pred[i], proba[i]) for i in parts])
        np.testing.assert_array_equal(m.hist_pred, s.hist_pred)
        assert state_from_dict(s.to_dict()).equals(s)
        if task == "multiclass":  # (predicted class, class, coarse score cell) counts
            k = p2.shape[1]
            cells = _kernels.bin_cells()[_kernels.score_bins(np.ascontiguousarray(p2.ravel()))].reshape(p2.shape)
            ref = np.zeros((k, k, _kernels.JOINT_CELLS), dtype=np.int64)
            np.add.at(ref, (np.repeat(pred, k), np.tile(np.arange(k), pred.size), cells.ravel()), 1)
            np.testing.assert_array_equal(s.pred_joint, ref)
            np.testing.assert_array_equal(m.pred_joint, ref)
            fast = state_from_dict(merge_state_dicts([state_of(task, None, pred[i], proba[i]).to_dict() for i in parts]))
            np.testing.assert_array_equal(fast.pred_joint, ref)
        else:
            assert s.pred_joint is None
        lab = state_of(task, y, pred, proba)
        np.testing.assert_array_equal(lab.prediction_part().hist_pred, s.hist_pred)


# ----------------------------------------------------------------- declared fields, sparse counts
def test_every_state_field_is_declared_once_and_drives_serialization():
    from perfkit.metrics.state import ClassificationState, RegressionState

    rng = np.random.default_rng(40)
    for cls, task in ((ClassificationState, "multiclass"), (RegressionState, "regression")):
        names = [f.name for f in dataclasses.fields(cls)]
        decl = cls.declared()
        assert [f.name for f in decl] == names and all(f.kind is not None for f in decl)
        s = state_of(task, *make_batch(task, 300, rng))
        assert set(s.to_dict()) == {"kind", "version", *names}
        lab = s.prediction_part()
        for f in decl:  # label-free fields kept, label fields reset to their declared default
            if f.label_free is True:
                assert json.dumps(lab.to_dict()[f.name]) == json.dumps(s.to_dict()[f.name])
            elif f.label_free is False:
                assert getattr(lab, f.name) is f.default or getattr(lab, f.name) == f.default


def test_sparse_counts_equal_their_dense_arrays():
    from perfkit.metrics._sparse import SparseCounts

    rng = np.random.default_rng(41)
    dense = [np.where(rng.random((3, 500)) < p, rng.integers(1, 300, (3, 500)), 0) for p in (0.01, 0.3, 0.9)]
    sparse = [SparseCounts.from_dense(d) for d in dense]
    for d, s in zip(dense, sparse, strict=True):
        np.testing.assert_array_equal(np.asarray(s), d)
        np.testing.assert_array_equal(s[1], d[1])
        assert s.sum() == d.sum() and s.row_sums().tolist() == d.sum(axis=1).tolist()
        back = SparseCounts.from_dict(json.loads(json.dumps(s.to_dict())))
        assert back.equals(s)
    # both merge strategies (few cells: sort; many: one accumulator) give the dense sum
    np.testing.assert_array_equal(np.asarray(SparseCounts.merge_all(sparse[:1] * 2)), 2 * dense[0])
    np.testing.assert_array_equal(np.asarray(SparseCounts.merge_all(sparse)), sum(dense))
    a, b = sparse[0].aligned_rows(sparse[1], 2)
    occupied = (dense[0][2] > 0) | (dense[1][2] > 0)
    np.testing.assert_array_equal(a, dense[0][2][occupied])
    np.testing.assert_array_equal(b, dense[1][2][occupied])


@pytest.mark.parametrize("n", [700, 40_000])  # sparse bucketing (small batch) and dense counting
def test_score_histograms_count_every_row_in_its_bucket(n):
    from perfkit.metrics.layout import HIST_BINS, score_bins

    rng = np.random.default_rng(42)
    y, pred, proba = make_batch("multiclass", n, rng)
    s = state_of("multiclass", y, pred, proba)
    for j in range(4):
        b = score_bins(np.ascontiguousarray(proba[:, j]))
        np.testing.assert_array_equal(s.hist_pos[j], np.bincount(b[y == j], minlength=HIST_BINS))
        np.testing.assert_array_equal(s.hist_neg[j], np.bincount(b[y != j], minlength=HIST_BINS))
        np.testing.assert_array_equal(s.hist_pred[j], np.bincount(b[pred == j], minlength=HIST_BINS))


def test_states_are_sparse_in_memory():
    """A 5-class batch of 1,100 rows holds kilobytes, not its 17 MB of dense histograms."""
    rng = np.random.default_rng(43)
    y = rng.integers(0, 5, 1100)
    proba = softmax(rng.normal(size=(1100, 5)) + 1.5 * np.eye(5)[y], axis=1)
    s = compute_state(y, proba.argmax(1), proba)
    held = sum(h.keys.nbytes + h.counts.nbytes for h in (s.hist_pos, s.hist_neg, s.hist_pred))
    assert held < 100_000, held
    m = merge_states([s] * 50)
    assert m.hist_neg._dense is None  # merging never densified
    np.testing.assert_array_equal(np.asarray(m.hist_neg), 50 * np.asarray(s.hist_neg))


def test_stored_merge_reads_every_row_layout():
    """Cell texts with wide counts, and first-layout rows among them, merge as decoded (the
    second layout: tests/test_state_codec.py)."""
    import base64

    rng = np.random.default_rng(44)
    parts = [state_of("binary", *make_batch("binary", 400, rng)) for _ in range(3)]
    big = merge_states([parts[0]] * 300)  # counts above 255: two-byte count records
    dicts = [p.to_dict() for p in parts] + [big.to_dict()]
    old = json.loads(json.dumps(dicts[1]))
    for key in ("hist_pos", "hist_neg"):  # rewrite as the first layout: base64 int32 indices / int64 counts
        rows = []
        for r in range(old[key]["rows"]):
            idx, c = parts[1].hist_pos.row(r) if key == "hist_pos" else parts[1].hist_neg.row(r)
            rows.append({"n": int(idx.size), "i": base64.b64encode(idx.astype(np.int32).tobytes()).decode(),
                         "c": base64.b64encode(c.astype(np.int64).tobytes()).decode()})
        old[key] = {"bins": old[key]["bins"], "rows": rows}
    dicts[1] = old
    fast = merge_state_dicts(dicts)
    slow = merge_states([state_from_dict(d) for d in dicts]).to_dict()
    assert fast == slow
    whole = merge_states([*parts, big])
    np.testing.assert_array_equal(np.asarray(state_from_dict(fast).hist_neg), np.asarray(whole.hist_neg))
