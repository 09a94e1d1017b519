"""Degradation detection: tests keep their size, FDR matches statsmodels, replay == tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from perfkit.analysis import score_test_diff
from perfkit.analysis.degradation import (
    adjust_pvalues,
    compare_metric,
    detect_degradation,
    severity_for,
)
from perfkit.config import DetectionSettings
from perfkit.metrics import compute_metrics


def _clf(rng, n, acc):
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < acc
    yp = np.where(correct, y, 1 - y)
    p = np.clip(np.where(yp == 1, 0.5 + 0.5 * rng.random(n), 0.5 * rng.random(n)), 0, 1)
    return y, yp, p


@pytest.mark.parametrize("method", ["fdr_bh", "fdr_by", "holm", "bonferroni"])
def test_adjust_pvalues_matches_statsmodels(method):
    rng = np.random.default_rng(3)
    P = rng.random((8, 7)) ** 3  # few rows: statsmodels holm runs gc.collect() per call
    P[rng.random(P.shape) < 0.1] = np.nan
    ours = adjust_pvalues(P, method)
    for i in range(P.shape[0]):
        ok = np.isfinite(P[i])
        ref = multipletests(P[i, ok], method=method)[1]
        np.testing.assert_allclose(ours[i, ok], ref, rtol=1e-12)
        assert np.isnan(ours[i, ~ok]).all()


def test_proportions_test_is_the_skew_corrected_score_test_with_margin():
    """The decision uses the Miettinen-Nurminen statistic (statsmodels) with the Gart-Nam
    skewness correction: with the correction removed it is statsmodels' score test."""
    rng = np.random.default_rng(0)
    base = compute_metrics(*_clf(rng, 20_000, 0.9))
    cur = compute_metrics(*_clf(rng, 1000, 0.84))
    for fraction in (1.0, 0.5):
        s = DetectionSettings(thresholds={"accuracy": 0.05}, gating="minimum_effect",
                              minimum_effect_fraction=fraction)
        f = compare_metric(cur["accuracy"], base["accuracy"], 0.05, s)
        b = base["accuracy"].value
        args = (cur["accuracy"].successes, 1000, base["accuracy"].successes, 20_000)
        ref = sm_proportion.test_proportions_2indep(*args, value=-0.05 * fraction * b, method="score",
                                                   compare="diff", alternative="smaller")
        plain, _ = score_test_diff(*args, -0.05 * fraction * b)
        assert float(plain) == pytest.approx(float(ref.statistic), rel=1e-9)
        corrected, _ = score_test_diff(*args, -0.05 * fraction * b, skew=True)
        assert f.test == "proportions_score"
        assert f.p_value == pytest.approx(float(stats.norm.cdf(corrected)), rel=1e-9)
        assert f.p_value > float(ref.pvalue)  # the lower tail of p1 - p0 is heavy at 90 %
    assert f.degradation == pytest.approx((b - cur["accuracy"].value) / b)


@pytest.mark.parametrize(("n", "p0"), [(50, 0.85), (50, 0.95), (200, 0.9), (30, 0.7)])
def test_skew_corrected_score_test_is_close_to_the_mid_p_binomial_test(n, p0):
    """Against a baseline of 10^7 rows the two-sample test is a one-sample test of the batch:
    its lower-tail p-value must follow the mid-p binomial test (Laud 2017), where the plain
    score test is several times too small in the tail."""
    base_n = 10_000_000
    x = np.arange(n + 1)
    midp = stats.binom.cdf(x - 1, n, p0) + 0.5 * stats.binom.pmf(x, n, p0)
    z, _ = score_test_diff(x, n, round(p0 * base_n), base_n, 0.0, skew=True)
    ours = stats.norm.cdf(z)
    tail = (midp < 0.01) & (midp > 1e-5)
    assert tail.any()
    ratio = ours[tail] / midp[tail]
    assert np.all((ratio > 0.6) & (ratio < 2.0)), ratio
    plain = stats.norm.cdf(score_test_diff(x, n, round(p0 * base_n), base_n, 0.0)[0])
    assert np.min(plain[tail] / midp[tail]) < np.min(ratio)
def test_direction_is_read_from_the_metric():
    rng = np.random.default_rng(1)
    y = rng.normal(size=3000)
    base = compute_metrics(y, y + rng.normal(scale=1.0, size=3000))
    worse = compute_metrics(y, y + rng.normal(scale=1.3, size=3000))
    better = compute_metrics(y, y + rng.normal(scale=0.7, size=3000))
    s = DetectionSettings(thresholds={"mse": 0.10, "mae": 0.10, "r2": 0.05})
    f_worse = {f.metric: f for f in detect_degradation(worse, base, s)}
    f_better = {f.metric: f for f in detect_degradation(better, base, s)}
    assert f_worse["mse"].degraded and f_worse["mae"].degraded and f_worse["mse"].degradation > 0.5
    assert not any(f.degraded for f in f_better.values())
    assert f_better["mse"].degradation < 0  # an improvement is a negative degradation


def test_severity_bands():
    bands = {"moderate": 0.10, "critical": 0.20}
    assert severity_for(0.049, 0.05, bands) is None
    assert severity_for(0.05, 0.05, bands) == "minor"
    assert severity_for(0.10, 0.05, bands) == "moderate"
    assert severity_for(0.2, 0.05, bands) == "critical"
    assert severity_for(math.nan, 0.05, bands) is None
    assert severity_for(0.12, 0.15, bands) is None  # below this metric's own threshold


def test_undefined_metric_is_reported_not_raised():
    rng = np.random.default_rng(2)
    base = compute_metrics(*_clf(rng, 2000, 0.9))
    single = compute_metrics(np.ones(50, int), np.ones(50, int), np.full(50, 0.9), classes=[0, 1])
    s = DetectionSettings(thresholds={"roc_auc": 0.03, "accuracy": 0.05})
    out = {f.metric: f for f in detect_degradation(single, base, s)}
    assert not out["roc_auc"].degraded and out["roc_auc"].reason.startswith("undefined")
    assert math.isnan(out["roc_auc"].p_value)


def test_small_batches_do_not_alarm_but_large_drops_do():
    """Healthy batches of 200 rows: the gated rule raises (almost) nothing; the naive rule does."""
    rng = np.random.default_rng(7)
    base = compute_metrics(*_clf(rng, 20_000, 0.88))
    thresholds = {"accuracy": 0.03, "f1_macro": 0.03, "precision_macro": 0.03, "recall_macro": 0.03}
    gated = DetectionSettings(thresholds=thresholds)
    naive = DetectionSettings(thresholds=thresholds, gating="none")
    n_gated = n_naive = 0
    for _ in range(200):
        cur = compute_metrics(*_clf(rng, 200, 0.88), n_boot=200)
        n_gated += any(f.degraded for f in detect_degradation(cur, base, gated))
        n_naive += any(f.degraded for f in detect_degradation(cur, base, naive))
    print(f"false alerts on healthy 200-row batches: gated {n_gated}/200, naive {n_naive}/200")
    assert n_gated <= 2  # <= 1 %
    assert n_naive >= 10 * max(n_gated, 1)
    bad = compute_metrics(*_clf(rng, 2000, 0.70))
    assert all(f.degraded for f in detect_degradation(bad, base, gated))


def test_fdr_across_segments_is_one_family():
    rng = np.random.default_rng(4)
    base = compute_metrics(*_clf(rng, 10_000, 0.9))
    groups = [(f"s{i}", compute_metrics(*_clf(rng, 1000, 0.9)), base) for i in range(5)]
    groups.append(("bad", compute_metrics(*_clf(rng, 1000, 0.7)), base))
    s = DetectionSettings(thresholds={"accuracy": 0.05, "f1_macro": 0.05})
    findings = detect_degradation(groups, settings=s)
    assert len(findings) == 12
    # one family over every (segment, metric), practical or not: BH (statsmodels), and the
    # call's block Simes gate (Simes inside each segment, Bonferroni across the 6 segments) as
    # a floor of every adjusted p
    ps = np.array([f.p_value for f in findings])
    segs = np.array([f.segment for f in findings])
    gate = min(len(ps) / 2 * multipletests(ps[segs == g], method="fdr_bh")[1].min() for g in set(segs))
    np.testing.assert_allclose([f.adjusted_p_value for f in findings],
                               np.maximum(multipletests(ps, method="fdr_bh")[1], min(gate, 1.0)))
    assert all(math.isfinite(f.adjusted_p_value) for f in findings)
    assert {f.segment for f in findings if f.degraded} == {"bad"}
