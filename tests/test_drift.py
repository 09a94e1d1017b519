"""Tests of perfkit.analysis.drift: reference values (scipy) and fixed-seed simulations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from perfkit.analysis import (
    CorrelationResult,
    DriftResult,
    compare_distributions,
    drift_performance_correlation,
    psi_label,
)
from perfkit.exceptions import EmptyBatchError, NonFiniteError, ShapeError, ValidationError


def _binned_beta(rng, a, b, n, bins=50):
    return np.histogram(rng.beta(a, b, size=n), bins=bins, range=(0, 1))[0]


def test_same_distribution_categorical_is_not_drifted():
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    pvals, psis = [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        res = compare_distributions(rng.multinomial(20_000, probs), rng.multinomial(5_000, probs))
        pvals.append(res.p_value)
        psis.append(res.psi)
    pvals = np.asarray(pvals)
    print(
        f"\ncategorical, same distribution: significant {np.mean(pvals < 0.05):.2f}, "
        f"max psi {max(psis):.4f}"
    )
    assert max(psis) < 0.02
    assert np.mean(pvals < 0.05) <= 0.10
    assert stats.kstest(pvals, "uniform").pvalue > 0.01  # p-values roughly uniform


def test_same_distribution_binned_is_not_drifted():
    sig, psis = 0, []
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        res = compare_distributions(
            _binned_beta(rng, 2, 5, 20_000), _binned_beta(rng, 2, 5, 5_000), kind="binned"
        )
        sig += res.drifted
        psis.append(res.psi)
    print(f"\nbinned, same distribution: significant {sig}/100, max psi {max(psis):.4f}")
    assert max(psis) < 0.02
    assert sig <= 10  # conservative: usually well below alpha


def test_shifted_scores_are_drifted():
    rng = np.random.default_rng(5)
    ref, cur = _binned_beta(rng, 2, 5, 10_000), _binned_beta(rng, 3, 4, 2_000)
    res = compare_distributions(ref, cur, kind="binned")
    assert res.drifted and res.psi > 0.1 and res.psi_label in ("moderate", "major")
    assert res.test == "ks_binned" and res.dof is None
    # the binned KS statistic never exceeds the raw-data one (conservative)
    x, y = rng.beta(2, 5, 10_000), rng.beta(3, 4, 2_000)
    raw = stats.ks_2samp(x, y).statistic
    binned = compare_distributions(
        np.histogram(x, 50, (0, 1))[0], np.histogram(y, 50, (0, 1))[0], kind="binned"
    ).statistic
    assert binned <= raw + 1e-12


def test_binned_ks_p_value_formula():
    ref, cur = np.array([10, 30, 40, 20]), np.array([20, 30, 30, 20])
    res = compare_distributions(ref, cur, kind="binned")
    d = np.max(np.abs(np.cumsum(ref / 100) - np.cumsum(cur / 100)))
    assert res.statistic == pytest.approx(d)
    assert res.p_value == pytest.approx(stats.kstwobign.sf(d * math.sqrt(100 * 100 / 200)))


def test_chi_square_equals_scipy_and_zero_columns_dropped():
    ref, cur = np.array([30, 0, 50, 20]), np.array([20, 0, 40, 40])
    res = compare_distributions(ref, cur)
    chi = stats.chi2_contingency(np.array([[30, 50, 20], [20, 40, 40]]), correction=False)
    assert res.statistic == pytest.approx(chi.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(chi.pvalue, rel=1e-12)
    assert res.dof == 2 and res.drifted == (chi.pvalue < 0.05)


def test_psi_and_js_definitions():
    ref, cur = np.array([50, 30, 20, 0]), np.array([40, 30, 20, 10])
    eps = 1e-4
    res = compare_distributions(ref, cur, eps=eps)
    p = (ref / 100 + eps) / (1 + 4 * eps)
    q = (cur / 100 + eps) / (1 + 4 * eps)
    assert res.psi == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert res.js_distance == pytest.approx(jensenshannon(ref / 100, cur / 100, base=2))
    assert math.isfinite(res.psi)


def test_psi_label():
    assert [psi_label(x) for x in (0.0, 0.099, 0.1, 0.25, 0.2501)] == [
        "none",
        "none",
        "moderate",
        "moderate",
        "major",
    ]
    with pytest.raises(NonFiniteError):
        psi_label(float("nan"))


def test_drift_validation_and_exports():
    with pytest.raises(ShapeError) as err:
        compare_distributions([1, 2, 3], [1, 2])
    assert err.value.parameter == "current_counts"
    with pytest.raises(EmptyBatchError):
        compare_distributions([0, 0], [1, 2])
    with pytest.raises(ValidationError) as err:
        compare_distributions([1, -2], [1, 2])
    assert err.value.parameter == "reference_counts"
    with pytest.raises(ValidationError) as err:
        compare_distributions([1, 2], [1, 2], kind="ordinal")
    assert err.value.parameter == "kind"
    res = compare_distributions([5, 5], [5, 5])
    assert isinstance(res, DriftResult) and not res.drifted and res.psi == pytest.approx(0.0)
    json.dumps(res.to_dict(), allow_nan=False)
    frame = res.to_frame()
    assert {"quantity", "value", "ci_lower", "ci_upper"} <= set(frame.columns)
    assert "psi" in res._repr_html_()
    single = compare_distributions([5, 0], [7, 0])  # one non-empty category
    assert single.p_value == 1.0 and not single.drifted


def test_correlation_recovers_positive_relation():
    rng = np.random.default_rng(8)
    psi = rng.uniform(0, 0.4, 40)
    accuracy_drop = 0.1 * psi + rng.normal(0, 0.005, 40)
    res = drift_performance_correlation(psi, accuracy_drop)
    ref = stats.spearmanr(psi, accuracy_drop)
    assert isinstance(res, CorrelationResult) and res.reason is None
    assert res.rho == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue)
    assert res.rho > 0.8 and res.p_value < 1e-6 and res.n == 40
    assert drift_performance_correlation(psi, accuracy_drop, "pearson").rho > 0.8
    json.dumps(res.to_dict(), allow_nan=False)


def test_correlation_degenerate_inputs():
    res = drift_performance_correlation([0.1, np.nan, 0.3], [0.01, 0.02, np.nan])
    assert math.isnan(res.rho) and res.n == 1 and "fewer than 3" in res.reason
    res = drift_performance_correlation([0.1, 0.1, 0.1, 0.1], [0.0, 0.1, 0.2, 0.3])
    assert math.isnan(res.rho) and res.reason == "constant input"
    assert res.to_dict()["rho"] is None
    with pytest.raises(ValidationError) as err:
        drift_performance_correlation([1, 2, 3], [1, 2, 3], method="distance")
    assert err.value.parameter == "method"
