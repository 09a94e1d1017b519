"""perfkit.analysis._stats and compare_distributions_many against their references.

``_stats`` repeats statsmodels' and scipy.stats' routines with numpy and scipy.special (so a
read command does not import them): the results must be the same floats, not merely close.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.regression.linear_model import OLS, WLS
from statsmodels.stats.diagnostic import acorr_ljungbox, breaks_cusumolsresid
from statsmodels.stats.stattools import durbin_watson

from perfkit.analysis import _stats
from perfkit.analysis.drift import compare_distributions, compare_distributions_many


def _series(rng: np.random.Generator, case: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of a metric history: some with tied times or tied values."""
    n = int(rng.integers(4, 90))
    x = np.sort(rng.uniform(0, 60, n))
    if case % 3 == 0:
        x = np.round(x)  # tied times
    y = rng.normal(0.9, 0.01, n) + (int(rng.integers(0, 3)) - 1) * 2e-4 * x
    if case % 4 == 0:
        y = np.round(y, 3)  # tied values
    return x, y


@pytest.mark.parametrize("case", range(40))
def test_regression_and_residual_tests_equal_statsmodels(case):
    rng = np.random.default_rng(case)
    x, y = _series(rng, case)
    X = np.column_stack([np.ones(len(x)), x])
    weights = 1.0 / rng.uniform(1e-5, 1e-4, len(x))
    for w in (None, weights):
        ref = (OLS(y, X) if w is None else WLS(y, X, weights=w)).fit()
        fit = _stats.wls(y, X, w)
        assert np.array_equal(fit.params, ref.params)
        assert np.array_equal(fit.cov, ref.cov_params())
        assert np.array_equal(fit.pvalues, ref.pvalues)
        assert np.array_equal(fit.wresid, ref.wresid)
        assert fit.df_resid == ref.df_resid and fit.scale == ref.scale
    resid = fit.wresid
    lags = int(min(5, max(1, len(x) // 5)))
    assert _stats.ljung_box_p(resid, lags) == acorr_ljungbox(resid, lags=[lags])["lb_pvalue"].iloc[-1]
    assert _stats.durbin_watson(resid) == durbin_watson(resid)
    stat, p, _ = breaks_cusumolsresid(resid, ddof=1)
    assert _stats.cusum_ols_resid(resid, ddof=1) == (stat, p)


@pytest.mark.parametrize("case", range(40))
def test_rank_correlations_equal_scipy(case):
    rng = np.random.default_rng(100 + case)
    x, y = _series(rng, case)
    tau = stats.kendalltau(x, y)  # exact p without ties up to 33 points, else normal
    assert _stats.kendall_tau(x, y) == (tau.statistic, tau.pvalue)
    rho = stats.spearmanr(x, y)
    assert _stats.spearman_r(x, y) == (rho.statistic, rho.pvalue)
    assert np.array_equal(_stats.rankdata(y), stats.rankdata(y))


def test_kendall_of_a_constant_is_nan_like_scipy():
    tau, p = _stats.kendall_tau(np.arange(5.0), np.ones(5))
    assert np.isnan(tau) and np.isnan(p) and np.isnan(stats.kendalltau(np.arange(5.0), np.ones(5)).statistic)


@pytest.mark.parametrize("p, df", [(0.975, None), (0.95, None), (0.995, 3.0), (0.95, 29.0), (0.9, 1e6)])
def test_quantiles_equal_scipy_stats(p, df):
    if df is None:
        assert _stats.norm_ppf(p) == stats.norm.ppf(p)
    else:
        assert _stats.t_ppf(p, df) == stats.t.ppf(p, df)
        assert _stats.t_sf(2.1, df) == stats.t.sf(2.1, df)


def test_metric_interval_quantiles_equal_scipy_stats():
    from perfkit.metrics import intervals

    for level in (0.8, 0.9, 0.95, 0.99):
        assert intervals.z_value(level) == stats.norm.ppf(0.5 + level / 2)
        assert intervals._t_quantile(level, 12.5) == stats.t.ppf(0.5 + level / 2, 12.5)
        for x in (1, 2, 3):
            assert intervals._poisson_lower(x, 40, level) == stats.chi2.ppf((1 - level) / 2, 2 * x) / 80


@pytest.mark.parametrize("kind", ["categorical", "binned"])
def test_compare_many_equals_one_by_one(kind):
    rng = np.random.default_rng(7)
    for _ in range(60):
        k, n = int(rng.integers(1, 25)), int(rng.integers(1, 12))
        ref = rng.integers(0, 60, (n, k)) * (rng.random((n, k)) < 0.8)  # empty bins, and empty rows
        cur = rng.integers(0, 60, (n, k)) * (rng.random((n, k)) < 0.8)
        try:
            one = [compare_distributions(r, c, kind=kind) for r, c in zip(ref, cur, strict=True)]
        except Exception as exc:  # an empty row: the same error from both
            with pytest.raises(type(exc), match=str(exc)):
                compare_distributions_many(ref, cur, kind=kind)
            continue
        assert compare_distributions_many(ref, cur, kind=kind) == one
