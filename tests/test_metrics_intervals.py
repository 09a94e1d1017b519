"""Simulation tests: the 95 % intervals cover the population value about 95 % of the time.

Each test draws 200 batches from a fixed population, computes the intervals and counts how
often they contain the truth (computed analytically or from a very large sample). With 200
batches the coverage of a correct 95 % interval lies in [0.90, 0.99] with probability > 0.99.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, softmax

from perfkit.metrics import compute_metrics, compute_state, evaluate, merge_states
from perfkit.metrics.intervals import wilson_interval

BATCHES = 200
LO, HI = 0.90, 0.99


def coverage(hits: list[bool]) -> float:
    return float(np.mean(hits))


# --------------------------------------------------------------------------- classification
PRIOR = np.array([0.5, 0.3, 0.2])


def draw_multiclass(rng: np.random.Generator, n: int):
    y = rng.choice(3, size=n, p=PRIOR)
    proba = softmax(rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[y], axis=1)
    return y, proba.argmax(axis=1), proba


@pytest.fixture(scope="module")
def multiclass_truth() -> dict[str, float]:
    """Population values from 2e6 rows (their own error is ~1e-3 of an interval's width)."""
    y, pred, proba = draw_multiclass(np.random.default_rng(12345), 2_000_000)
    s = compute_state(y, pred, proba)
    return {k: v.value for k, v in evaluate(s, n_boot=10).items()}


def test_multiclass_coverage(multiclass_truth):
    rng = np.random.default_rng(1)
    names = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss")
    hits: dict[str, list[bool]] = {k: [] for k in names}
    for _ in range(BATCHES):
        y, pred, proba = draw_multiclass(rng, 500)
        rep = compute_metrics(y, pred, proba, metrics=names, n_boot=500)
        for k in names:
            hits[k].append(rep[k].ci_lower <= multiclass_truth[k] <= rep[k].ci_upper)
    cov = {k: coverage(v) for k, v in hits.items()}
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_binary_auc_coverage_score_interval_and_histograms():
    d = 1.2
    truth = float(stats.norm.cdf(d / math.sqrt(2)))  # binormal AUC
    rng = np.random.default_rng(2)
    hits: dict[str, list[bool]] = {"large": [], "small": [], "histogram": []}
    for _ in range(BATCHES):
        for n, key in ((600, "large"), (150, "small")):
            y = (rng.random(n) < 0.3).astype(int)
            s = expit(rng.normal(size=n) + d * y)
            state = compute_state(y, None, s)
            auc = evaluate(state, metrics=["roc_auc"])["roc_auc"]
            assert auc.method == "score_delong"
            hits[key].append(auc.ci_lower <= truth <= auc.ci_upper)
            if key == "large":  # the same batch as three merged parts (histogram DeLong)
                parts = np.array_split(np.arange(n), 3)
                merged = merge_states([compute_state(y[i], None, s[i], classes=[0, 1]) for i in parts])
                m = evaluate(merged, metrics=["roc_auc"])["roc_auc"]
                hits["histogram"].append(m.ci_lower <= truth <= m.ci_upper)
    cov = {k: coverage(v) for k, v in hits.items()}
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_binary_positive_class_wilson_coverage():
    # y ~ Bernoulli(0.4); prediction correct with probability 0.8 -> P(pred = 1 | y = 1) = 0.8
    rng = np.random.default_rng(3)
    p_pos, acc = 0.4, 0.8
    truth = {
        "accuracy": acc,
        "recall": acc,
        "precision": p_pos * acc / (p_pos * acc + (1 - p_pos) * (1 - acc)),
    }
    hits: dict[str, list[bool]] = {k: [] for k in truth}
    for _ in range(BATCHES):
        y = (rng.random(400) < p_pos).astype(int)
        pred = np.where(rng.random(400) < acc, y, 1 - y)
        rep = compute_metrics(y, pred, metrics=list(truth))
        for k, t in truth.items():
            hits[k].append(rep[k].ci_lower <= t <= rep[k].ci_upper)
            if k == "accuracy":
                assert rep[k].method == "wilson"
    cov = {k: coverage(v) for k, v in hits.items()}
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_wilson_interval_is_statsmodels_formula():
    # closed form check (statsmodels.stats.proportion.proportion_confint(method="wilson"))
    lo, hi = wilson_interval(37, 50, 0.95)
    z = stats.norm.ppf(0.975)
    p, n = 37 / 50, 50
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((centre - half, centre + half), rel=1e-12)


# --------------------------------------------------------------------------- regression
def test_regression_coverage_normal_errors():
    # y = 3 + x + u, yhat = 3.1 + 0.8 x with x, u ~ N(0, 1): e ~ N(-0.1, 1.04)
    mu, sigma2 = -0.1, 1.04
    sigma = math.sqrt(sigma2)
    mse = mu * mu + sigma2
    mae = sigma * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sigma2)) + mu * (
        1 - 2 * stats.norm.cdf(-mu / sigma)
    )
    truth = {"mse": mse, "rmse": math.sqrt(mse), "mae": mae, "r2": 1 - mse / 2.0}
    rng = np.random.default_rng(4)
    hits: dict[str, list[bool]] = {k: [] for k in truth}
    merged_hits: list[bool] = []
    for _ in range(BATCHES):
        n = 500
        x = rng.normal(size=n)
        y = 3 + x + rng.normal(size=n)
        yhat = 3.1 + 0.8 * x
        rep = compute_metrics(y, yhat, metrics=list(truth))
        for k, t in truth.items():
            hits[k].append(rep[k].ci_lower <= t <= rep[k].ci_upper)
        parts = np.array_split(np.arange(n), 4)
        r2 = evaluate(merge_states([compute_state(y[i], yhat[i]) for i in parts]), metrics=["r2"])["r2"]
        merged_hits.append(r2.ci_lower <= truth["r2"] <= r2.ci_upper)
    cov = {k: coverage(v) for k, v in hits.items()}
    cov["r2_merged"] = coverage(merged_hits)
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_heavy_tailed_errors_are_flagged():
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    rep = compute_metrics(y, y + rng.standard_t(3, size=2000), metrics=["mse", "rmse"])
    assert rep["mse"].reason.startswith("heavy_tailed_errors")
    assert rep["rmse"].reason == rep["mse"].reason
    rep = compute_metrics(y, y + rng.normal(size=2000), metrics=["mse"])
    assert rep["mse"].reason is None


def test_intervals_contain_the_value_and_respect_bounds():
    rng = np.random.default_rng(6)
    y, pred, proba = draw_multiclass(rng, 300)
    for rep in (
        compute_metrics(y, pred, proba),
        compute_metrics(y[:40] == 0, pred[:40] == 0, proba[:40, 0]),
        compute_metrics(rng.normal(size=50), rng.normal(size=50)),
    ):
        for mv in rep.values():
            if math.isfinite(mv.ci_lower):
                assert mv.ci_lower <= mv.value <= mv.ci_upper, mv
            assert mv.level == 0.95
    narrow = compute_metrics(y, pred, proba, level=0.5)["accuracy"]
    wide = compute_metrics(y, pred, proba, level=0.99)["accuracy"]
    assert wide.ci_lower < narrow.ci_lower < narrow.ci_upper < wide.ci_upper


@pytest.mark.parametrize(("auc", "m", "n"), [(1.0, 10, 40), (0.0, 10, 40), (1.0, 3, 5), (0.97, 30, 60)])
def test_newcombe_interval_has_width_at_the_boundary(auc, m, n):
    from perfkit.metrics.intervals import newcombe_auc_interval

    lo, hi = newcombe_auc_interval(auc, m, n)
    assert 0.0 <= lo <= auc <= hi <= 1.0
    assert hi - lo > 0.01


def test_perfect_separation_small_batch_has_an_interval():
    auc = compute_metrics([0] * 20 + [1] * 10, [0] * 20 + [1] * 10, [0.1] * 20 + [0.9] * 10)["roc_auc"]
    assert auc.value == 1.0 and auc.method == "score_delong"
    assert auc.ci_lower < 0.95 and auc.ci_upper == 1.0
