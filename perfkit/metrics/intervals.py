"""Confidence intervals used by the metric core (pure functions)."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, stats

__all__ = [
    "bootstrap_confusion",
    "macro_prf",
    "newcombe_auc_interval",
    "normal_interval",
    "wilson_interval",
    "z_value",
]


@functools.lru_cache(maxsize=64)
def z_value(level: float) -> float:
    """Two-sided normal quantile for a confidence level (cached: scipy's ppf is slow)."""
    return float(stats.norm.ppf(0.5 + level / 2.0))


@functools.lru_cache(maxsize=4096)
def _t_quantile(level: float, df: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2.0, df))


def wilson_interval(successes: float, trials: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Examples
    --------
    >>> lo, hi = wilson_interval(80, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.7112, 0.8666)
    """
    if trials <= 0:
        return (math.nan, math.nan)
    z = z_value(level)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def normal_interval(value: float, se: float, level: float = 0.95, *, df: float | None = None) -> tuple[float, float]:
    """value +- q * se with a normal (or Student t when ``df`` is given) quantile."""
    if not (math.isfinite(value) and math.isfinite(se)):
        return (math.nan, math.nan)
    q = z_value(level) if df is None or df <= 0 else _t_quantile(level, float(df))
    return (value - q * se, value + q * se)


def logit_auc_interval(auc: float, se: float, level: float = 0.95) -> tuple[float, float]:
    """DeLong interval on the logit scale (stays inside [0, 1])."""
    if not (0.0 < auc < 1.0) or not math.isfinite(se) or se <= 0:
        return (math.nan, math.nan)
    z = z_value(level)
    lg = math.log(auc / (1 - auc))
    d = z * se / (auc * (1 - auc))
    return (1 / (1 + math.exp(-(lg - d))), 1 / (1 + math.exp(-(lg + d))))


def _hanley_mcneil_var(theta: float, m: int, n: int) -> float:
    nstar = (m + n) / 2.0
    return (
        theta
        * (1 - theta)
        * (1 + (nstar - 1) * (1 - theta) / (2 - theta) + (nstar - 1) * theta / (1 + theta))
        / (m * n)
    )


def newcombe_auc_interval(auc: float, m: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's (2006) score-type interval for an AUC with ``m`` positives, ``n`` negatives.

    Solves ``|auc - theta| = z * sqrt(V_HM(theta))``; well-behaved for small samples and an
    AUC near 0 or 1, where DeLong's interval under-covers.

    Examples
    --------
    >>> lo, hi = newcombe_auc_interval(1.0, 10, 40)
    >>> 0.8 < lo < 1.0 and hi == 1.0
    True
    """
    if m <= 0 or n <= 0 or not math.isfinite(auc):
        return (math.nan, math.nan)
    z = z_value(level)

    def f(theta: float) -> float:
        return abs(auc - theta) - z * math.sqrt(_hanley_mcneil_var(theta, m, n))

    # f(auc) < 0 except at auc in {0, 1}, where V_HM vanishes and theta = auc is a
    # degenerate root: bracket just inside so that brentq finds the real bound
    inner = 1e-12
    a_lo = auc - inner if auc >= 1.0 else auc
    a_hi = auc + inner if auc <= 0.0 else auc
    lo = 0.0 if auc <= 0.0 or f(0.0) <= 0 else optimize.brentq(f, 0.0, a_lo)
    hi = 1.0 if auc >= 1.0 or f(1.0) <= 0 else optimize.brentq(f, a_hi, 1.0)
    return (lo, hi)


def macro_prf(cm: np.ndarray, present: np.ndarray, zero_division: float) -> np.ndarray:
    """Macro precision, recall and F1 of confusion matrices.

    ``cm`` has shape (..., k, k) (rows truth); ``present`` selects the classes averaged
    (scikit-learn averages over the labels present in y_true or y_pred). Returns (..., 3).
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    pred = cm.sum(axis=-2).astype(np.float64)
    true = cm.sum(axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(pred > 0, tp / np.where(pred > 0, pred, 1), zero_division)
        rec = np.where(true > 0, tp / np.where(true > 0, true, 1), zero_division)
        den = pred + true
        f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), zero_division)
    sel = present.astype(bool)
    return np.stack([prec[..., sel].mean(-1), rec[..., sel].mean(-1), f1[..., sel].mean(-1)], axis=-1)


def bootstrap_confusion(cm: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Multinomial bootstrap of confusion-matrix cells (equivalent to resampling rows).

    Returns an array of shape (n_boot, k, k).
    """
    k = cm.shape[0]
    n = int(cm.sum())
    rng = np.random.default_rng(seed)
    p = cm.ravel().astype(np.float64) / n
    draws = rng.multinomial(n, p, size=n_boot)
    return draws.reshape(n_boot, k, k)
