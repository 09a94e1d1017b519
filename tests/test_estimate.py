"""Label-free estimates (CBPE) from states: per-row reference, merges, engines, coverage, concept drift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax
from sklearn.isotonic import IsotonicRegression

from perfkit.exceptions import StateError, ValidationError
from perfkit.metrics import (
    _kernels,
    calibrate,
    compute_state,
    concept_drift_check,
    estimate,
    evaluate,
    merge_state_dicts,
    merge_states,
    state_from_dict,
)

TOL = 1e-9


# ------------------------------------------------------------------ per-row reference
def _calibrated_rows(base_scores, base_is_pos, scores, end_rows=None):
    """Isotonic calibration fitted on the baseline's bins (scikit-learn), read per row.

    As perfkit, the first / last bins are pooled until each end holds ``ceil(3.5 sqrt(n))``
    baseline rows before the fit (``end_rows=0``: plain isotonic regression).
    """
    bb = _kernels.score_bins(np.ascontiguousarray(base_scores, dtype=np.float64))
    tot = np.bincount(bb, minlength=_kernels.HIST_BINS)
    pos = np.bincount(bb[base_is_pos], minlength=_kernels.HIST_BINS)
    s = np.flatnonzero(tot)
    y, w = pos[s] / tot[s], tot[s].astype(float)
    m = math.ceil(3.5 * math.sqrt(w.sum())) if end_rows is None else end_rows
    if m > 0:
        cw = np.cumsum(w)
        lo, hi = np.flatnonzero(cw >= m)[0], np.flatnonzero(cw <= cw[-1] - m)[-1] + 1
        y = y.copy()
        y[: lo + 1] = np.average(y[: lo + 1], weights=w[: lo + 1])
        y[hi:] = np.average(y[hi:], weights=w[hi:])
    iso = IsotonicRegression(out_of_bounds="clip").fit(s.astype(float), y, sample_weight=w)
    b = _kernels.score_bins(np.ascontiguousarray(scores, dtype=np.float64))
    return iso.predict(b.astype(float)), b


def _expected_auc(q, b):
    """sum over row pairs of P(i positive, j negative), same bin counting one half."""
    lower = b[None, :] < b[:, None]
    same = b[None, :] == b[:, None]
    neg = 1.0 - q
    num = float(q @ ((lower * neg[None, :]).sum(1) + 0.5 * (same * neg[None, :]).sum(1)))
    return num / (q.sum() * neg.sum())


def reference(task, base_y, base_p, pred, p, k):
    n = pred.size
    if task == "binary":
        q, b = _calibrated_rows(base_p, base_y == 1, p)
        pp = pred == 1
        tp, fp, fn, tn = q[pp].sum(), (1 - q[pp]).sum(), q[~pp].sum(), (1 - q[~pp]).sum()
        pr1, re1, f11 = tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn)
        pr0, re0, f10 = tn / (tn + fn), tn / (tn + fp), 2 * tn / (2 * tn + fn + fp)
        return {"accuracy": (tp + tn) / n, "precision": pr1, "recall": re1, "f1": f11,
                "precision_macro": (pr1 + pr0) / 2, "recall_macro": (re1 + re0) / 2,
                "f1_macro": (f11 + f10) / 2, "roc_auc": _expected_auc(q, b)}
    tp, npred, ntrue, aucs = np.zeros(k), np.zeros(k), np.zeros(k), []
    for c in range(k):
        q, b = _calibrated_rows(base_p[:, c], base_y == c, p[:, c])
        tp[c], npred[c], ntrue[c] = q[pred == c].sum(), (pred == c).sum(), q.sum()
        aucs.append(_expected_auc(q, b))
    prec = np.where(npred > 0, tp / np.maximum(npred, 1), 0.0)
    return {"accuracy": tp.sum() / n, "precision_macro": prec.mean(), "recall_macro": (tp / ntrue).mean(),
            "f1_macro": (2 * tp / (npred + ntrue)).mean(), "roc_auc": float(np.mean(aucs))}


def make(task, n, rng, *, shift=0.0, k=5, confident=1.0, rule=False):
    """Covariate-shifted batch from a fixed score -> outcome relation (no concept drift)."""
    if task == "binary":
        x = rng.normal(shift, 1.0, n)
        y = (rng.random(n) < expit(1.5 * x - 0.5)).astype(int)
        p = expit(confident * (2.2 * x - 0.3))
        pred = (p > 0.5).astype(int)
        if rule:  # a business rule: the predicted label is not a threshold of the score
            pred = np.where(rng.random(n) < 0.1, 1 - pred, pred)
        return y, pred, p
    logits = rng.normal(0, 1.2, (n, k)) + shift * np.arange(k) / k
    pi = softmax(logits, axis=1)
    y = (rng.random(n)[:, None] > np.cumsum(pi, axis=1)).sum(1)
    p = softmax(confident * logits, axis=1)
    pred = p.argmax(1)
    if rule:
        pred = np.where(rng.random(n) < 0.1, rng.integers(0, k, n), pred)
    return y, pred, p


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimates_equal_per_row_reference(task, seed):
    rng = np.random.default_rng(seed)
    k = 2 if task == "binary" else 4
    conf = [1.0, 3.0, 30.0][seed]  # the last: scores far below 1e-12 and above 1 - 1e-12
    by, bpred, bp = make(task, 3000, rng, k=k, confident=conf)
    y, pred, p = make(task, 800, rng, shift=0.7, k=k, confident=conf, rule=True)
    classes = list(range(k))
    base = compute_state(by, bpred, bp, classes=classes)
    est = estimate(compute_state(None, pred, p, classes=classes, task=task), base)
    ref = reference(task, by, bp, pred, p, k)
    assert set(est) == set(ref)
    for name, v in ref.items():
        assert est[name].value == pytest.approx(v, abs=TOL), name
        assert est[name].method == "cbpe"
        assert est[name].ci_lower <= est[name].value <= est[name].ci_upper
        assert est[name].se > 0
    # a labelled batch gives the same estimate (its labels are ignored)
    lab = estimate(compute_state(y, pred, p, classes=classes, task=task), base)
    assert all(lab[m].value == est[m].value for m in est)


def test_plain_isotonic_calibration_on_request():
    rng = np.random.default_rng(4)
    by, bpred, bp = make("binary", 3000, rng)
    _, pred, p = make("binary", 500, rng, shift=1.0)
    cal = calibrate(compute_state(by, bpred, bp), min_end_rows=0)
    q, _ = _calibrated_rows(bp, by == 1, p, end_rows=0)
    est = estimate(compute_state(None, pred, p), cal)
    assert est["accuracy"].value == pytest.approx(np.mean(np.where(pred == 1, q, 1 - q)), abs=TOL)


def test_custom_predictions_are_exact_not_a_threshold():
    rng = np.random.default_rng(5)
    by, bpred, bp = make("binary", 5000, rng)
    y, _, p = make("binary", 2000, rng, shift=0.5)
    pred = (p > 0.8).astype(int)  # a custom threshold the score histograms cannot know
    base = compute_state(by, bpred, bp)
    est = estimate(compute_state(None, pred, p), base)
    ref = reference("binary", by, bp, pred, p, 2)
    assert est["recall"].value == pytest.approx(ref["recall"], abs=TOL)
    naive = reference("binary", by, bp, (p > 0.5).astype(int), p, 2)
    assert abs(naive["recall"] - est["recall"].value) > 0.05


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_merged_estimates_equal_estimate_of_concatenation(task):
    rng = np.random.default_rng(7)
    by, bpred, bp = make(task, 4000, rng, k=3)
    base = compute_state(by, bpred, bp, classes=[0, 1, 2] if task == "multiclass" else [0, 1])
    cal = calibrate(base)
    parts = [make(task, n, rng, shift=s, k=3, rule=True) for n, s in ((300, 0.2), (700, 0.9), (50, -0.4))]
    cls = [0, 1, 2] if task == "multiclass" else [0, 1]
    states = [compute_state(None, pr, p, classes=cls, task=task) for _, pr, p in parts]
    whole = compute_state(
        None, np.concatenate([x[1] for x in parts]), np.concatenate([x[2] for x in parts]), classes=cls, task=task
    )
    a = estimate(merge_states(states), base)
    b = estimate(whole, cal)  # a precomputed calibration gives the same answer
    c = estimate(merge_state_dicts([s.to_dict() for s in states]), base.to_dict())
    for m in a:
        assert a[m].value == pytest.approx(b[m].value, abs=1e-12)
        assert a[m].se == pytest.approx(b[m].se, rel=1e-9)
        assert c[m].value == pytest.approx(b[m].value, abs=1e-12)


def test_engine_estimates_equal_in_memory():
    duckdb = pytest.importorskip("duckdb")
    from perfkit.engines import compute_states

    rng = np.random.default_rng(8)
    by, bpred, bp = make("multiclass", 3000, rng, k=3)
    y, pred, p = make("multiclass", 2000, rng, shift=0.8, k=3, rule=True)
    cols = {c: f"p{c}" for c in range(3)}
    base_df = pd.DataFrame({"y_true": by, "y_pred": bpred, **{f"p{c}": bp[:, c] for c in range(3)}})
    df = pd.DataFrame({"batch_id": np.arange(2000) % 2, "y_pred": pred, **{f"p{c}": p[:, c] for c in range(3)}})
    con = duckdb.connect()
    base_e = compute_states(base_df, task="multiclass", proba=cols, group_by=(), session=con)["state"][0]
    out = compute_states(df, task="multiclass", y_true=None, proba=cols, classes=[0, 1, 2], session=con)
    base_m = compute_state(by, bpred, bp)
    for g, s in zip(out["batch_id"], out["state"], strict=True):
        sel = df["batch_id"].to_numpy() == g
        ref = estimate(compute_state(None, pred[sel], p[sel], classes=[0, 1, 2]), base_m)
        got = estimate(s, base_e)
        for m in ref:
            assert got[m].value == pytest.approx(ref[m].value, abs=1e-12), m
            assert got[m].se == pytest.approx(ref[m].se, rel=1e-9), m
    # binary with a probability column and arg-max predictions (y_pred=None)
    by, bpred, bp = make("binary", 3000, rng)
    y, pred, p = make("binary", 1000, rng, shift=0.4)
    got = estimate(
        compute_states(pd.DataFrame({"p": p}), task="binary", y_true=None, y_pred=None, proba="p",
                       group_by=(), classes=[0, 1], session=con)["state"][0],
        compute_state(by, bpred, bp),
    )
    ref = estimate(compute_state(None, None, p, classes=[0, 1]), compute_state(by, bpred, bp))
    assert all(got[m].value == pytest.approx(ref[m].value, abs=1e-12) for m in ref)


def test_undefined_estimates_say_why_and_bad_input_raises():
    rng = np.random.default_rng(9)
    by, bpred, bp = make("binary", 500, rng)
    base = compute_state(by, bpred, bp)
    reg = estimate(compute_state(None, rng.normal(size=20), task="regression"), base)
    assert all(math.isnan(v.value) and v.reason == "not_estimable_regression" for v in reg.values())
    no_scores = estimate(compute_state(None, bpred, None, classes=[0, 1]), base)
    assert {v.reason for v in no_scores.values()} == {"no_scores"}
    old = compute_state(None, bpred, bp).to_dict()
    old["hist_pred"] = None  # a state stored before the prediction histogram existed
    assert {v.reason for v in estimate(old, base).values()} == {"no_prediction_histogram"}
    pending_base = base.prediction_part()
    assert {v.reason for v in estimate(compute_state(None, bpred, bp), pending_base).values()} == {
        "no_labelled_baseline"}
    assert {v.reason for v in estimate(compute_state(None, bpred, bp), None).values()} == {"no_labelled_baseline"}
    with pytest.raises(StateError):
        estimate(compute_state(None, bpred, np.column_stack([1 - bp, bp / 2, bp / 2]), classes=[0, 1, 2]), base)
    with pytest.raises(ValidationError):
        estimate(compute_state(None, bpred, bp), base, level=1.5)
    with pytest.raises(StateError):
        calibrate(pending_base)
    assert state_from_dict(base.to_dict()).equals(base)


# ----------------------------------------------------------------- coverage (seeded)
def _coverage(task, n, reps, seed, k=5):
    rng = np.random.default_rng(seed)
    hits = {"accuracy": 0, "roc_auc": 0, "f1_macro": 0}
    for _ in range(reps):
        by, bpred, bp = make(task, 20_000, rng, k=k)
        base = compute_state(by, bpred, bp, classes=list(range(2 if task == "binary" else k)))
        shift = rng.uniform(0.3, 1.0)
        y, pred, p = make(task, n, rng, shift=shift, k=k)
        st = compute_state(y, pred, p, classes=list(range(2 if task == "binary" else k)))
        est = estimate(st.prediction_part(), base)
        real = evaluate(st, metrics=list(hits))
        for m in hits:
            hits[m] += est[m].ci_lower <= real[m].value <= est[m].ci_upper
    return {m: h / reps for m, h in hits.items()}


@pytest.mark.parametrize(("task", "n"), [("binary", 2000), ("multiclass", 2000)])
def test_interval_covers_realized_value_under_covariate_shift(task, n):
    cov = _coverage(task, n, 150, seed=11 if task == "binary" else 12)
    assert all(c >= 0.9 for c in cov.values()), cov



def test_calibration_bias_term_keeps_coverage_for_batches_larger_than_the_baseline():
    """Isotonic calibration leans optimistic (noise turned into a monotone staircase); the
    bias does not shrink with the batch, so for a batch twice the baseline the per-block
    variance alone under-covers. The bootstrap bias term restores the coverage."""
    rng = np.random.default_rng(14)
    names = ("accuracy", "roc_auc", "f1_macro")
    hits = {True: dict.fromkeys(names, 0), False: dict.fromkeys(names, 0)}
    err, reps = [], 60
    for _ in range(reps):
        by, bpred, bp = make("multiclass", 5000, rng)
        base = compute_state(by, bpred, bp, classes=list(range(5)))
        y, pred, p = make("multiclass", 10_000, rng, shift=rng.uniform(0.3, 1.0))
        st = compute_state(y, pred, p, classes=list(range(5)))
        real = evaluate(st, metrics=list(names))
        for with_bias in (True, False):
            est = estimate(st.prediction_part(), calibrate(base, bias_replicates=32 if with_bias else 0))
            for m in names:
                hits[with_bias][m] += est[m].ci_lower <= real[m].value <= est[m].ci_upper
            if with_bias:
                err.append(est["roc_auc"].value - real["roc_auc"].value)
    cov = {k: {m: h / reps for m, h in v.items()} for k, v in hits.items()}
    assert np.mean(err) > 2 * np.std(err) / np.sqrt(reps)  # the estimate is optimistic: a bias
    assert all(c >= 0.93 for c in cov[True].values()), cov
    assert cov[False]["roc_auc"] < cov[True]["roc_auc"] and cov[False]["roc_auc"] <= 0.92, cov
    # the point estimate is the same (NannyML's CBPE): only the interval changes
    e1, e0 = estimate(st.prediction_part(), calibrate(base)), estimate(st.prediction_part(),
                                                                       calibrate(base, bias_replicates=0))
    assert all(e1[m].value == e0[m].value and e1[m].se >= e0[m].se for m in e1)

# ------------------------------------------------------------ concept drift (seeded)
def _drift_stream(rng, base, drift, n, task="binary"):
    """Two labelled batches; ``drift`` shifts the outcome's relation to the score."""
    fired = False
    for _ in range(2):
        y, pred, p = make(task, n, rng, shift=rng.uniform(0.0, 0.8))
        if drift:  # concept drift: the same scores, outcomes flipped for a share of rows
            flip = rng.random(n) < drift
            y = np.where(flip, 1 - y, y)
        st = compute_state(y, pred, p, classes=[0, 1])
        check = concept_drift_check(estimate(st, base), evaluate(st))
        fired = fired or check.suspected
    return fired


def test_concept_drift_check_fires_on_drift_and_stays_quiet_on_stable_streams():
    rng = np.random.default_rng(13)
    by, bpred, bp = make("binary", 20_000, rng)
    base = calibrate(compute_state(by, bpred, bp))
    # flipping 10.5 % of outcomes moves accuracy by ~5 points (accuracy ~0.74: f (2 acc - 1))
    fired = np.mean([_drift_stream(rng, base, 0.105, 2000) for _ in range(40)])
    false = np.mean([_drift_stream(rng, base, 0.0, 2000) for _ in range(150)])
    assert fired >= 0.9 and false <= 0.02, (fired, false)


def test_concept_drift_check_is_a_pure_function():
    from perfkit.metrics import MetricValue

    est = {"accuracy": MetricValue("accuracy", 0.9, se=0.01), "roc_auc": MetricValue("roc_auc", math.nan)}
    check = concept_drift_check(est, {"accuracy": MetricValue("accuracy", 0.80), "roc_auc": MetricValue("roc_auc", 0.7)})
    assert check.suspected and check.metrics == ["accuracy"] and check.kind == "concept_drift_suspected"
    assert check.to_dict()["findings"]["accuracy"]["z"] == pytest.approx(-10.0)
    with pytest.raises(ValidationError):
        concept_drift_check(est, est, alpha=0)
