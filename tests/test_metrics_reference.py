"""Every registered metric against scikit-learn (or a numpy reference) to 1e-9.

Each reference function returns a value for EVERY metric registered for the task, so a
new metric without a reference fails :func:`test_every_metric_has_a_reference`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from perfkit.metrics import compute_metrics, compute_state, evaluate, metric_names
from perfkit.metrics._abs_hist import REL_ERROR

RTOL = 1e-9
ATOL = 1e-12
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- references
def _sk(fn, *args, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args, **kwargs))


def _auc_ovr_defined(y_idx: np.ndarray, proba: np.ndarray, columns) -> float:
    """Mean of the binary AUCs of the classes with positives and negatives."""
    aucs = [
        skm.roc_auc_score(y_idx == c, proba[:, c])
        for c in columns
        if 0 < np.sum(y_idx == c) < len(y_idx)
    ]
    return float(np.mean(aucs)) if aucs else math.nan


def ref_classification(y_true, y_pred, proba2d, classes, positive_label=None, eps=None) -> dict:
    """scikit-learn's values; ``proba2d`` has one column per class in ``classes`` order."""
    classes = list(classes)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    binary = len(classes) == 2
    pos = classes[-1] if positive_label is None else positive_label
    out = {
        "accuracy": _sk(skm.accuracy_score, y_true, y_pred),
        "precision_macro": _sk(skm.precision_score, y_true, y_pred, average="macro"),
        "recall_macro": _sk(skm.recall_score, y_true, y_pred, average="macro"),
        "f1_macro": _sk(skm.f1_score, y_true, y_pred, average="macro"),
        "balanced_accuracy": _sk(skm.balanced_accuracy_score, y_true, y_pred),
        "sample_count": float(len(y_true)),
    }
    if binary:
        out["precision"] = _sk(skm.precision_score, y_true, y_pred, pos_label=pos)
        out["recall"] = _sk(skm.recall_score, y_true, y_pred, pos_label=pos)
        out["f1"] = _sk(skm.f1_score, y_true, y_pred, pos_label=pos)
    lookup = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([lookup[v] for v in y_true])
    score_cols = [classes.index(pos)] if binary else list(range(len(classes)))
    if proba2d is None:
        p_idx = np.array([lookup[v] for v in y_pred])
        out["prediction_variance"] = float(
            np.mean([np.var((p_idx == c).astype(float)) for c in score_cols])
        )
        out["roc_auc"] = out["log_loss"] = out["brier_score"] = math.nan  # reason "no_scores"
        return out
    p64 = np.asarray(proba2d, dtype=np.float64)
    out["prediction_variance"] = float(np.mean([np.var(p64[:, c]) for c in score_cols]))
    if eps is None:
        out["log_loss"] = _sk(skm.log_loss, y_true, p64, labels=classes)
    else:  # scikit-learn's rule with the input dtype's eps, computed in float64
        p = np.clip(p64[np.arange(len(y_idx)), y_idx], eps, 1 - eps)
        out["log_loss"] = float(-np.mean(np.log(p)))
    if binary:
        out["brier_score"] = _sk(skm.brier_score_loss, y_idx == classes.index(pos), p64[:, classes.index(pos)])
    else:
        out["brier_score"] = _sk(skm.brier_score_loss, y_idx, p64, labels=list(range(len(classes))))
    if binary:
        j = classes.index(pos)
        both = 0 < np.sum(y_idx == j) < len(y_idx)
        out["roc_auc"] = _sk(skm.roc_auc_score, y_idx == j, p64[:, j]) if both else math.nan
    elif all(np.any(y_idx == c) for c in range(len(classes))):
        out["roc_auc"] = _sk(skm.roc_auc_score, y_idx, p64, multi_class="ovr", labels=range(len(classes)))
    else:
        out["roc_auc"] = _auc_ovr_defined(y_idx, p64, range(len(classes)))
    return out


def smape_ref(y, yhat) -> float:
    den = np.abs(y) + np.abs(yhat)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(den == 0, 0.0, 2 * np.abs(y - yhat) / np.where(den == 0, 1, den))
    return float(np.mean(t))


def ref_regression(y, yhat) -> dict:
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    nz = y != 0
    return {
        "mse": _sk(skm.mean_squared_error, y, yhat),
        "rmse": _sk(skm.root_mean_squared_error, y, yhat),
        "mae": _sk(skm.mean_absolute_error, y, yhat),
        "r2": _sk(skm.r2_score, y, yhat),
        "mape": _sk(skm.mean_absolute_percentage_error, y[nz], yhat[nz]) if nz.any() else math.nan,
        "smape": smape_ref(y, yhat),
        "prediction_variance": float(np.var(yhat)),
        "sample_count": float(len(y)),
        "median_absolute_error": _sk(skm.median_absolute_error, y, yhat),
        "p90_absolute_error": float(np.quantile(np.abs(y - yhat), 0.9)),
    }


#: metrics read from the log-spaced |e| histogram: equal to the reference within its bound
HISTOGRAM_REL = {"median_absolute_error": REL_ERROR, "p90_absolute_error": REL_ERROR}


def assert_matches(report, ref: dict) -> None:
    assert set(report) == set(ref), set(report) ^ set(ref)
    for name, expected in ref.items():
        got = report[name].value
        if math.isnan(expected):
            assert math.isnan(got), (name, got)
            assert report[name].reason, name
        elif name in HISTOGRAM_REL:
            assert abs(got - expected) <= HISTOGRAM_REL[name] * abs(expected) + 1e-300, (name, got, expected)
        else:
            assert got == pytest.approx(expected, rel=RTOL, abs=ATOL), (name, got, expected)


# --------------------------------------------------------------------------- data
def _proba(rng: np.random.Generator, n: int, k: int, ties: bool) -> np.ndarray:
    p = rng.dirichlet(np.full(k, 0.7), size=n)
    if ties:  # few distinct values: many tied scores
        p = np.round(p * 4) / 4 + 1e-3
        p /= p.sum(axis=1, keepdims=True)
    return p


@st.composite
def classification_batches(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    k = draw(st.integers(2, 5))
    n = draw(st.integers(1, 120))
    kind = draw(st.sampled_from(["int", "str", "bool"] if k == 2 else ["int", "str"]))
    ties = draw(st.booleans())
    with_proba = draw(st.booleans())
    proba = _proba(rng, n, k, ties)
    y_idx = rng.integers(0, k, n)
    noisy = rng.random(n) < 0.4
    p_idx = np.where(noisy, rng.integers(0, k, n), proba.argmax(axis=1))
    labels = {
        "int": [3 * i - 2 for i in range(k)],
        "str": [f"c{i}" for i in range(k)],
        "bool": [False, True],
    }[kind]
    classes = labels
    y_true = np.array([labels[i] for i in y_idx])
    y_pred = np.array([labels[i] for i in p_idx])
    return y_true, y_pred, (proba if with_proba else None), classes


# --------------------------------------------------------------------------- tests
def test_every_metric_has_a_reference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    p = _proba(rng, 50, 3, False)
    assert set(metric_names("multiclass")) == set(ref_classification(y, p.argmax(1), p, [0, 1, 2]))
    y = rng.integers(0, 2, 50)
    p = _proba(rng, 50, 2, False)
    assert set(metric_names("binary")) == set(ref_classification(y, p.argmax(1), p, [0, 1]))
    assert set(metric_names("regression")) == set(ref_regression(rng.normal(size=9), rng.normal(size=9)))


@HYP
@given(classification_batches())
def test_classification_matches_sklearn(batch):
    y_true, y_pred, proba, classes = batch
    report = compute_metrics(y_true, y_pred, proba, classes=classes)
    assert_matches(report, ref_classification(y_true, y_pred, proba, classes))


@HYP
@given(classification_batches())
def test_proba_only_uses_argmax(batch):
    y_true, _, proba, classes = batch
    if proba is None:
        return
    y_pred = np.array([classes[i] for i in proba.argmax(axis=1)])
    report = compute_metrics(y_true, None, proba, classes=classes)
    assert_matches(report, ref_classification(y_true, y_pred, proba, classes))


@HYP
@given(st.integers(0, 2**32 - 1), st.integers(1, 200), st.sampled_from(["normal", "offset", "integers", "sorted"]))
def test_regression_matches_sklearn(seed, n, kind):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 3
    if kind == "offset":
        y = y + 1e6
    elif kind == "integers":
        y = np.round(y)  # zero targets happen; mape skips them
    elif kind == "sorted":
        y = np.sort(y) * 100 + 1e4  # the moment shifts come from a strided sample
    yhat = y + rng.standard_t(3, size=n)
    if n > 3:
        yhat[: n // 4] = y[: n // 4]  # exact predictions (0/0 sMAPE terms when y == 0)
    report = compute_metrics(y, yhat, task="regression")
    ref = ref_regression(y, yhat)
    assert_matches(report, ref)
    n_zero = int(np.sum(y == 0))
    if n_zero and n_zero < n:
        assert report["mape"].reason == f"zero_targets_skipped:{n_zero}"


def test_binary_positive_label_and_one_dimensional_scores():
    rng = np.random.default_rng(1)
    y = rng.choice(["no", "yes"], 300)
    p_yes = np.clip(rng.random(300) * 0.7 + 0.3 * (y == "yes"), 0, 1)
    y_pred = np.where(p_yes > 0.5, "yes", "no")
    proba2d = np.column_stack([1 - p_yes, p_yes])
    assert_matches(compute_metrics(y, y_pred, p_yes), ref_classification(y, y_pred, proba2d, ["no", "yes"]))
    # positive label "no": a 1-D score is then the probability of "no"
    rep = compute_metrics(y, y_pred, 1 - p_yes, positive_label="no")
    assert_matches(rep, ref_classification(y, y_pred, proba2d, ["no", "yes"], positive_label="no"))


def test_ties_in_scores():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1000)
    s = np.round(rng.random(1000) * 0.5 + 0.3 * y, 1)  # ~8 distinct values
    rep = compute_metrics(y, (s > 0.5).astype(int), s)
    assert rep["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, s), rel=RTOL)


def test_class_absent_from_predictions_and_truth():
    y_true = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    y_pred = np.array([0, 0, 1, 0, 0, 1, 0, 1])  # class 2 never predicted
    rep = compute_metrics(y_true, y_pred)
    assert_matches(rep, ref_classification(y_true, y_pred, None, [0, 1, 2]))
    assert "precision_zero_division:2" in rep["precision_macro"].reason
    y_pred2 = np.array([0, 3, 1, 1, 2, 2, 0, 3])  # class 3 never true
    rep = compute_metrics(y_true, y_pred2)
    assert_matches(rep, ref_classification(y_true, y_pred2, None, [0, 1, 2, 3]))
    assert "recall_zero_division:3" in rep["recall_macro"].reason


def test_declared_class_absent_everywhere_is_not_averaged():
    # scikit-learn averages over the labels present in y_true or y_pred
    y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 0]
    rep = compute_metrics(y_true, y_pred, classes=[0, 1, 2])
    for name in ("precision_macro", "recall_macro", "f1_macro"):
        fn = getattr(skm, name.replace("_macro", "_score"))
        assert rep[name].value == pytest.approx(_sk(fn, y_true, y_pred, average="macro"), rel=RTOL)


def test_zero_division_is_configurable():
    y_true, y_pred = [0, 0, 1, 2], [0, 0, 1, 1]
    s = compute_state(y_true, y_pred)
    got = evaluate(s, zero_division=1.0)["precision_macro"].value
    assert got == pytest.approx(_sk(skm.precision_score, y_true, y_pred, average="macro", zero_division=1.0))


def test_multiclass_auc_skips_a_class_absent_from_truth():
    rng = np.random.default_rng(3)
    p = _proba(rng, 200, 4, False)
    y = rng.integers(0, 3, 200)  # class 3 never true
    rep = compute_metrics(y, p.argmax(1), p, classes=[0, 1, 2, 3])
    assert rep["roc_auc"].value == pytest.approx(_auc_ovr_defined(y, p, range(4)), rel=RTOL)
    assert "class_without_positives:3" in rep["roc_auc"].reason


def test_one_row_batches():
    rep = compute_metrics([1], [1], [0.8])
    assert_matches(rep, ref_classification([1], [1], np.array([[0.2, 0.8]]), [0, 1]))
    assert rep["roc_auc"].reason == "single_class_in_y_true"
    rep = compute_metrics(["b"], ["a"], classes=["a", "b", "c"])
    assert_matches(rep, ref_classification(["b"], ["a"], None, ["a", "b", "c"]))
    rep = compute_metrics([2.5], [2.0])
    assert_matches(rep, ref_regression([2.5], [2.0]))
    assert rep["r2"].reason == "fewer_than_two_samples"


def test_single_class_batch_auc_is_nan_with_reason():
    rep = compute_metrics([1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.7])
    assert math.isnan(rep["roc_auc"].value)
    assert rep["roc_auc"].reason == "single_class_in_y_true"
    assert rep["accuracy"].value == pytest.approx(2 / 3)


def test_bool_labels():
    rng = np.random.default_rng(4)
    y = rng.random(100) < 0.4
    s = np.clip(rng.random(100) * 0.8 + 0.2 * y, 0, 1)
    pred = s > 0.5
    rep = compute_metrics(y, pred, s)
    assert rep.task == "binary"
    assert_matches(rep, ref_classification(y, pred, np.column_stack([1 - s, s]), [False, True]))


@pytest.mark.parametrize("order", [[2, 0, 1], [1, 2, 0], [0, 1, 2]])
def test_probabilities_as_dataframe_any_column_order(order):
    rng = np.random.default_rng(5)
    labels = ["ant", "bee", "cat"]
    p = _proba(rng, 150, 3, False)
    y = rng.choice(labels, 150)
    pred = np.array(labels)[p.argmax(1)]
    df = pd.DataFrame(p[:, order], columns=[labels[i] for i in order])
    rep = compute_metrics(pd.Series(y), pd.Series(pred), df)
    assert_matches(rep, ref_classification(y, pred, p, labels))


def test_float32_input_clips_like_sklearn():
    rng = np.random.default_rng(6)
    p = _proba(rng, 400, 3, False).astype(np.float32)
    p[:5] = np.array([1.0, 0.0, 0.0], dtype=np.float32)  # certain rows: clipping matters
    y = rng.integers(0, 3, 400)
    y[:5] = 1
    rep = compute_metrics(y, p.argmax(1), p)
    eps32 = float(np.finfo(np.float32).eps)
    assert_matches(rep, ref_classification(y, p.argmax(1), p, [0, 1, 2], eps=eps32))
    # and close to scikit-learn computing in float32 itself
    assert rep["log_loss"].value == pytest.approx(_sk(skm.log_loss, y, p), rel=1e-5)


def test_float32_regression():
    rng = np.random.default_rng(7)
    y = (rng.normal(size=300) + 5).astype(np.float32)
    yhat = (y + rng.normal(size=300)).astype(np.float32)
    rep = compute_metrics(y, yhat)
    assert_matches(rep, ref_regression(y.astype(np.float64), yhat.astype(np.float64)))


def test_mape_zero_targets_rule():
    y = np.array([0.0, 0.0, 2.0, 4.0])
    yhat = np.array([1.0, 0.0, 1.0, 5.0])
    rep = compute_metrics(y, yhat, task="regression")
    assert rep["mape"].value == pytest.approx((0.5 + 0.25) / 2, rel=RTOL)
    assert rep["mape"].reason == "zero_targets_skipped:2"
    assert rep["mape"].n == 2
    rep = compute_metrics(np.zeros(5), np.arange(5.0), task="regression")
    assert math.isnan(rep["mape"].value)
    assert rep["mape"].reason == "all_targets_zero"
    assert rep["smape"].value == pytest.approx(smape_ref(np.zeros(5), np.arange(5.0)), rel=RTOL)


def test_constant_target_r2_follows_sklearn():
    y = np.full(10, 3.0)
    for yhat in (y.copy(), y + np.linspace(-1, 1, 10)):
        rep = compute_metrics(y, yhat, task="regression")
        assert rep["r2"].value == _sk(skm.r2_score, y, yhat)
