"""The few tests and fits the trend and drift analyses use, without scipy.stats or statsmodels.

Importing ``scipy.stats`` and ``statsmodels`` costs about a second, most of ``perfkit report``.
Each function here repeats, operation for operation, the routine named in its docstring with
numpy and ``scipy.special`` (the functions ``scipy.stats`` itself evaluates), so the numbers
are the same floats; ``tests/test_stats_reference.py`` compares them with the originals.
The arithmetic follows those libraries' implementations (scipy and statsmodels, both under
the BSD 3-clause license).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import special

__all__ = [
    "LinearFit",
    "cusum_ols_resid",
    "durbin_watson",
    "kendall_tau",
    "ljung_box_p",
    "norm_ppf",
    "rankdata",
    "spearman_r",
    "t_ppf",
    "t_sf",
    "wls",
]


def norm_ppf(p: float) -> float:
    """``scipy.stats.norm.ppf(p)`` for ``0 < p < 1``.

    Examples
    --------
    >>> round(norm_ppf(0.975), 6)
    1.959964
    """
    return float(special.ndtri(p))


def t_ppf(p: float, df: float) -> float:
    """``scipy.stats.t.ppf(p, df)`` for ``0 < p < 1``.

    Examples
    --------
    >>> round(t_ppf(0.975, 10), 6)
    2.228139
    """
    return float(special.stdtrit(df, p))


def t_sf(x: float, df: float) -> float:
    """``scipy.stats.t.sf(x, df)``.

    Examples
    --------
    >>> t_sf(0.0, 5)
    0.5
    """
    return float(special.stdtr(df, -x))


class LinearFit(NamedTuple):
    """Weighted least squares as statsmodels' ``WLS(y, X, weights).fit()`` reports it."""

    params: np.ndarray
    cov: np.ndarray  #: ``cov_params()``: ``(X'WX)^-1`` times ``scale``
    pvalues: np.ndarray  #: two-sided, t on ``df_resid`` degrees of freedom
    df_resid: float
    wresid: np.ndarray  #: whitened residuals ``sqrt(w) (y - X b)``
    scale: float  #: ``wresid . wresid / df_resid``


def _pinv_extended(x: np.ndarray, rcond: float = 1e-15) -> tuple[np.ndarray, np.ndarray]:
    """``statsmodels.tools.tools.pinv_extended``: the pseudo-inverse and the singular values."""
    u, s, vt = np.linalg.svd(x, False)
    s_orig = np.copy(s)
    cutoff = rcond * np.maximum.reduce(s)
    for i in range(min(vt.shape[1], u.shape[0])):
        s[i] = 1.0 / s[i] if s[i] > cutoff else 0.0
    return np.dot(np.transpose(vt), np.multiply(s[:, np.newaxis], np.transpose(u))), s_orig


def wls(y: np.ndarray, X: np.ndarray, weights: np.ndarray | None = None) -> LinearFit:
    """``statsmodels`` ``WLS(y, X, weights=weights).fit()`` (``OLS`` when ``weights`` is None).

    Examples
    --------
    >>> fit = wls(np.array([1.0, 2.0, 2.9, 4.2]), np.column_stack([np.ones(4), np.arange(4.0)]))
    >>> fit.params.round(3).tolist(), fit.df_resid
    ([0.95, 1.05], 2.0)
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    if weights is None:
        wendog, wexog = y, X
    else:
        sw = np.sqrt(np.asarray(weights, dtype=float))
        wendog, wexog = y * sw, sw[:, None] * X
    pinv, singular = _pinv_extended(wexog)
    normalized_cov = np.dot(pinv, np.transpose(pinv))
    rank = np.linalg.matrix_rank(np.diag(singular))
    params = np.dot(pinv, wendog)
    df_resid = float(wexog.shape[0]) - rank
    wresid = wendog - np.dot(wexog, params)
    scale = np.dot(wresid, wresid) / df_resid
    cov = normalized_cov * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        tvalues = params / np.sqrt(np.diag(cov))
    pvalues = special.stdtr(df_resid, -np.abs(tvalues)) * 2
    return LinearFit(params, cov, pvalues, float(df_resid), wresid, float(scale))


def ljung_box_p(x: np.ndarray, lags: int) -> float:
    """p-value of the Ljung-Box test at ``lags``: statsmodels'
    ``acorr_ljungbox(x, lags=[lags])["lb_pvalue"]`` (autocorrelations of the demeaned series,
    normalized by ``nobs``, no FFT).

    Examples
    --------
    >>> 0 < ljung_box_p(np.sin(np.arange(40.0)), 3) < 0.01
    True
    """
    x = np.asarray(x, dtype=float)
    nobs = x.shape[0]
    xo = x - x.mean()
    avf = np.correlate(xo, xo, "full")[nobs - 1:] / (nobs * np.ones(2 * nobs - 1))[nobs - 1:]
    sacf = avf[: lags + 1] / avf[0]
    sacf2 = sacf[1: lags + 1] ** 2 / (nobs - np.arange(1, lags + 1))
    q = nobs * (nobs + 2) * np.cumsum(sacf2)[lags - 1]
    return float(special.chdtrc(lags, q))


def durbin_watson(resid: np.ndarray) -> float:
    """statsmodels' ``durbin_watson``.

    Examples
    --------
    >>> durbin_watson(np.array([1.0, -1.0, 1.0, -1.0]))
    3.0
    """
    resid = np.asarray(resid, dtype=float)
    return float(np.sum(np.diff(resid, 1) ** 2) / np.sum(resid**2))


def cusum_ols_resid(resid: np.ndarray, ddof: int = 0) -> tuple[float, float]:
    """statsmodels' ``breaks_cusumolsresid(resid, ddof)``: (sup statistic, p-value).

    The p-value is the Kolmogorov survival function (``scipy.stats.kstwobign.sf``).

    Examples
    --------
    >>> stat, p = cusum_ols_resid(np.r_[np.full(10, -1.0), np.full(10, 1.0)], ddof=1)
    >>> round(stat, 3), p < 0.01
    (2.179, True)
    """
    resid = np.asarray(resid, dtype=float).ravel()
    nobs = len(resid)
    nobssigma2 = (resid**2).sum()
    if ddof > 0:
        nobssigma2 = nobssigma2 / (nobs - ddof) * nobs
    sup_b = np.abs(resid.cumsum() / np.sqrt(nobssigma2)).max()
    return float(sup_b), float(special.kolmogorov(sup_b))


def rankdata(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ``scipy.stats.rankdata(a)``.

    Examples
    --------
    >>> rankdata(np.array([3.0, 1.0, 3.0, 2.0])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    arr = np.ravel(np.asarray(a))
    sorter = np.argsort(arr, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size, dtype=np.intp)
    arr = arr[sorter]
    obs = np.r_[True, arr[1:] != arr[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def spearman_r(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.spearmanr(x, y)`` of finite, non-constant data: (rho, two-sided p).

    Examples
    --------
    >>> round(spearman_r(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))[0], 12)
    0.8
    """
    ranked = np.column_stack([rankdata(x), rankdata(y)])
    rs = np.corrcoef(ranked, rowvar=False)[1, 0]
    dof = len(ranked) - 2
    with np.errstate(divide="ignore"):
        t = rs * np.sqrt((dof / ((rs + 1.0) * (1.0 - rs))).clip(0))
    return float(rs), float(2 * special.stdtr(dof, -np.abs(t)))


def _discordant(x: np.ndarray, y: np.ndarray) -> int:
    """Pairs with ``x_i < x_k`` and ``y_i > y_k``, for ``x`` sorted and both dense ranks
    (scipy's ``_kendall_dis``: a Fenwick tree over the ranks of ``y``)."""
    sup = 1 + int(np.max(y))
    tree = [0] * (sup + 1)
    xs, ys = x.tolist(), y.tolist()
    dis, i, k, size = 0, 0, 0, len(xs)
    while i < size:
        while k < size and xs[i] == xs[k]:
            dis += i
            idx = ys[k]
            while idx != 0:
                dis -= tree[idx]
                idx &= idx - 1
            k += 1
        while i < k:
            idx = ys[i]
            while idx < sup:
                tree[idx] += 1
                idx += idx & -idx
            i += 1
    return dis


def _kendall_p_exact(n: int, c: int) -> float:
    """Two-sided exact p-value of Kendall's tau without ties (scipy's ``_kendall_p_exact``)."""
    c = int(min(c, (n * (n - 1)) // 2 - c))
    if n <= 2:
        prob = 1.0
    elif c == 0:
        prob = 2.0 / math.factorial(n) if n < 171 else 0.0
    elif c == 1:
        prob = 2.0 / math.factorial(n - 1) if n < 172 else 0.0
    elif 4 * c == n * (n - 1):
        prob = 1.0
    elif n < 171:
        new = np.zeros(c + 1)
        new[0:2] = 1.0
        for j in range(3, n + 1):
            new = np.cumsum(new)
            if j <= c:
                new[j:] -= new[: c + 1 - j]
        prob = 2.0 * np.sum(new) / math.factorial(n)
    else:
        new = np.zeros(c + 1)
        new[0:2] = 1.0
        for j in range(3, n + 1):
            new = np.cumsum(new) / j
            if j <= c:
                new[j:] -= new[: c + 1 - j]
        prob = np.sum(new)
    return float(np.clip(prob, 0, 1))


def kendall_tau(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.kendalltau(x, y)`` (tau-b; exact p-value without ties up to 33 points,
    else the tie-corrected normal approximation) of finite data: (tau, two-sided p).

    NaN, NaN when either input is constant or empty.

    Examples
    --------
    >>> kendall_tau(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    (0.6666666666666669, 0.3333333333333333)
    """
    x = np.asarray(x).ravel()
    y = np.asarray(y).ravel()
    size = x.size
    if not size:
        return math.nan, math.nan

    def count_rank_tie(ranks: np.ndarray) -> tuple[int, int, int]:
        cnt = np.bincount(ranks).astype("int64", copy=False)
        cnt = cnt[cnt > 1]
        return (int((cnt * (cnt - 1) // 2).sum()), int((cnt * (cnt - 1.0) * (cnt - 2)).sum()),
                int((cnt * (cnt - 1.0) * (2 * cnt + 5)).sum()))

    perm = np.argsort(y)  # sort on y and convert y to dense ranks
    x, y = x[perm], y[perm]
    y = np.r_[True, y[1:] != y[:-1]].cumsum(dtype=np.intp)
    perm = np.argsort(x, kind="mergesort")  # stable sort on x and convert x to dense ranks
    x, y = x[perm], y[perm]
    x = np.r_[True, x[1:] != x[:-1]].cumsum(dtype=np.intp)
    dis = _discordant(x, y)
    obs = np.r_[True, (x[1:] != x[:-1]) | (y[1:] != y[:-1]), True]
    cnt = np.diff(np.nonzero(obs)[0]).astype("int64", copy=False)
    ntie = int((cnt * (cnt - 1) // 2).sum())  # joint ties
    xtie, x0, x1 = count_rank_tie(x)
    ytie, y0, y1 = count_rank_tie(y)
    tot = (size * (size - 1)) // 2
    if xtie == tot or ytie == tot:
        return math.nan, math.nan
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis
    tau = con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie)
    tau = np.minimum(1.0, max(-1.0, tau))
    if xtie == 0 and ytie == 0 and (size <= 33 or min(dis, tot - dis) <= 1):
        return float(tau), _kendall_p_exact(size, tot - dis)
    m = size * (size - 1.0)
    var = ((m * (2 * size + 5) - x1 - y1) / 18 + (2 * xtie * ytie) / m + x0 * y0 / (9 * m * (size - 2)))
    z = con_minus_dis / np.sqrt(var)
    return float(tau), float(2 * special.ndtr(-np.abs(z)))
