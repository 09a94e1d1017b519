"""Compiled inner loops (numba). Internal: callers pass validated, contiguous arrays."""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "HIST_HALF",
    "HIST_BINS",
    "auc_from_sorted",
    "class_histograms",
    "delong_from_histograms",
    "logloss_moments",
    "moments",
    "regression_pass",
    "score_bins",
]

# Log-linear (HDR-style) bins on min(p, 1 - p): the exponent and the top MANT_BITS mantissa
# bits of a float64 are monotone in its value, so bin = (bits >> shift) - base is a cheap,
# exact, order-preserving bucket with a relative width of 2**-MANT_BITS.
MANT_BITS = 7
MIN_EXP = -40  # p < 2**-40 (~9e-13) shares the first bucket
_SHIFT = 52 - MANT_BITS
_BASE = (1023 + MIN_EXP) << MANT_BITS
HIST_HALF = (-1 - MIN_EXP) * (1 << MANT_BITS) + 1  # buckets for p in [0, 0.5)
HIST_BINS = 2 * HIST_HALF


@nb.njit(cache=True, inline="always")
def _half_bin(q: float) -> int:
    if q < 2.0**MIN_EXP:
        return 0
    b = (np.float64(q).view(np.int64) >> _SHIFT) - _BASE + 1
    if b > HIST_HALF - 1:
        b = HIST_HALF - 1
    return b


@nb.njit(cache=True, inline="always")
def _bin(p: float) -> int:
    if p < 0.5:
        return _half_bin(p)
    return HIST_BINS - 1 - _half_bin(1.0 - p)


@nb.njit(cache=True)
def score_bins(p: np.ndarray) -> np.ndarray:
    """Bucket index of every score (for tests and engines)."""
    out = np.empty(p.shape[0], dtype=np.int64)
    for i in range(p.shape[0]):
        out[i] = _bin(p[i])
    return out


@nb.njit(cache=True)
def moments(x: np.ndarray):
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        s += x[i]
    mean = s / n
    # correct the mean for rounding (one refinement step)
    c = 0.0
    for i in range(n):
        c += x[i] - mean
    mean += c / n
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(n):
        d = x[i] - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    return n, mean, m2, m3, m4


@nb.njit(cache=True)
def class_histograms(proba: np.ndarray, y_idx: np.ndarray, hist_classes: np.ndarray, labelled: bool):
    """Score histograms per histogram class.

    proba: (n, k) float64; y_idx: (n,) int64 class index (ignored when not labelled);
    hist_classes: class indices that get a histogram. Returns pos, neg of shape (h, HIST_BINS);
    when not labelled every row is counted in ``neg`` (``pos`` stays zero).
    """
    n = proba.shape[0]
    h = hist_classes.shape[0]
    pos = np.zeros((h, HIST_BINS), dtype=np.int64)
    neg = np.zeros((h, HIST_BINS), dtype=np.int64)
    for i in range(n):
        for j in range(h):
            c = hist_classes[j]
            b = _bin(proba[i, c])
            if labelled and y_idx[i] == c:
                pos[j, b] += 1
            else:
                neg[j, b] += 1
    return pos, neg


@nb.njit(cache=True)
def auc_from_sorted(pos: np.ndarray, neg: np.ndarray):
    """Exact AUC (ties count one half) and DeLong's variance from sorted scores.

    Sun & Xu's fast form: the placement values come from one merge of the two sorted arrays.
    """
    m = pos.shape[0]
    nn = neg.shape[0]
    # V10 for positives: share of negatives below (+ half the ties)
    v10 = np.empty(m)
    j_lo = 0
    j_hi = 0
    for i in range(m):
        s = pos[i]
        while j_lo < nn and neg[j_lo] < s:
            j_lo += 1
        if j_hi < j_lo:
            j_hi = j_lo
        while j_hi < nn and neg[j_hi] <= s:
            j_hi += 1
        v10[i] = (j_lo + 0.5 * (j_hi - j_lo)) / nn
    v01 = np.empty(nn)
    i_lo = 0
    i_hi = 0
    for j in range(nn):
        s = neg[j]
        while i_lo < m and pos[i_lo] < s:
            i_lo += 1
        if i_hi < i_lo:
            i_hi = i_lo
        while i_hi < m and pos[i_hi] <= s:
            i_hi += 1
        # positives above s plus half the ties
        v01[j] = ((m - i_hi) + 0.5 * (i_hi - i_lo)) / m
    auc = 0.0
    for i in range(m):
        auc += v10[i]
    auc /= m
    s10 = 0.0
    for i in range(m):
        d = v10[i] - auc
        s10 += d * d
    s01 = 0.0
    for j in range(nn):
        d = v01[j] - auc
        s01 += d * d
    var = 0.0
    if m > 1:
        var += s10 / (m - 1) / m
    if nn > 1:
        var += s01 / (nn - 1) / nn
    return auc, var


@nb.njit(cache=True)
def delong_from_histograms(pos: np.ndarray, neg: np.ndarray):
    """AUC, DeLong variance and a hard error bound from binned scores.

    Rows in the same bucket are treated as tied (one half). The true AUC of the unbinned
    scores differs by at most ``0.5 * sum_b pos_b * neg_b / (P * N)``.
    """
    P = 0
    N = 0
    for b in range(pos.shape[0]):
        P += pos[b]
        N += neg[b]
    if P == 0 or N == 0:
        return np.nan, np.nan, np.nan
    below = 0  # negatives strictly below the current bin
    auc = 0.0
    tie = 0.0
    for b in range(pos.shape[0]):
        if pos[b] > 0:
            auc += pos[b] * (below + 0.5 * neg[b])
            tie += pos[b] * neg[b]
        below += neg[b]
    auc /= P * N
    # placement values per bin
    s10 = 0.0
    below = 0
    for b in range(pos.shape[0]):
        if pos[b] > 0:
            v = (below + 0.5 * neg[b]) / N
            s10 += pos[b] * (v - auc) ** 2
        below += neg[b]
    s01 = 0.0
    above = P
    for b in range(pos.shape[0]):
        above -= pos[b]
        if neg[b] > 0:
            v = (above + 0.5 * pos[b]) / P
            s01 += neg[b] * (v - auc) ** 2
    var = 0.0
    if P > 1:
        var += s10 / (P - 1) / P
    if N > 1:
        var += s01 / (N - 1) / N
    bound = 0.5 * tie / (P * N)
    return auc, var, bound


@nb.njit(cache=True)
def logloss_moments(proba: np.ndarray, y_idx: np.ndarray, eps: float):
    """Per-row log loss -log(clip(p[i, y_i])) reduced to (n, mean, M2, M3, M4)."""
    n = proba.shape[0]
    loss = np.empty(n)
    for i in range(n):
        p = proba[i, y_idx[i]]
        if p < eps:
            p = eps
        elif p > 1.0 - eps:
            p = 1.0 - eps
        loss[i] = -np.log(p)
    return moments(loss)


@nb.njit(cache=True)
def regression_pass(y: np.ndarray, yhat: np.ndarray):
    """Derived per-row series of a regression batch.

    Returns e = y - yhat, |e|, e**2, |e| / |y| over y != 0 (compacted, with its count) and
    the sMAPE terms 2|e| / (|y| + |yhat|) with 0/0 := 0.
    """
    n = y.shape[0]
    e = np.empty(n)
    ae = np.empty(n)
    se = np.empty(n)
    ape = np.empty(n)
    sape = np.empty(n)
    k = 0
    for i in range(n):
        d = y[i] - yhat[i]
        a = abs(d)
        e[i] = d
        ae[i] = a
        se[i] = d * d
        ay = abs(y[i])
        if ay != 0.0:
            ape[k] = a / ay
            k += 1
        den = ay + abs(yhat[i])
        sape[i] = 2.0 * a / den if den != 0.0 else 0.0
    return e, ae, se, ape[:k], sape
