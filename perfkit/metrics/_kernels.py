"""Compiled inner loops (numba). Internal: callers pass validated, contiguous arrays."""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "CELL_ALPHABET",
    "CELL_BITS",
    "CELL_LIMIT",
    "HIST_BINS",
    "HIST_HALF",
    "V1_BINS",
    "abs_error_hist",
    "aligned_counts",
    "auc_from_keys",
    "bin_cells",
    "bin_lower_edges",
    "cells_decode",
    "cells_encode",
    "auc_keys",
    "auc_keys_into",
    "brier_rows",
    "brier_rows_into",
    "check_proba",
    "class_pass",
    "class_pass3",
    "class_moments_true",
    "class_pass3_pairs",
    "confusion_counts",
    "delong_from_histograms",
    "has_fraction",
    "isotonic_blocks",
    "macro_influence_ss_bins",
    "macro_influence_ss_rows",
    "macro_prf_draws",
    "moments",
    "nonzero_index",
    "pair_offsets",
    "class_buckets",
    "placement_tables",
    "placement_values",
    "placement_tables_sparse",
    "regression_moments",
    "regression_moments_from_sums",
    "regression_shifts",
    "regression_sums_errors",
    "regression_sums_relative",
    "regression_sums_values",
    "scatter_add",
    "scatter_b64_rows",
    "scatter_cells",
    "score_bins",
    "split_counts3",
    "sparse_influence",
    "upgrade_v1_bins",
]

# Log-linear (HDR-style) bins on q = min(p, 1 - p): the exponent and the top mantissa bits
# of a float64 are monotone in its value, so bin = (bits >> shift) - base is a cheap, exact,
# order-preserving bucket. Two resolutions per half:
#   fine   q in [2**MIN_EXP, 0.5):        MANT_BITS mantissa bits (relative width 2**-10)
#   coarse q in [2**LOW_EXP, 2**MIN_EXP): COARSE_BITS mantissa bits (relative width 2**-5,
#          a logit width of ~0.02), so over-confident models (scores down to 1e-300, or up
#          to 1 - 2**-53) keep their ranking; q < 2**LOW_EXP (and 0) shares bucket 0.
# Bucket layout of a half: [0] [coarse: COARSE_SPAN] [fine: FINE_SPAN]; the upper half
# (p >= 0.5, on 1 - p, exact there) mirrors it.
MANT_BITS = 10
MIN_EXP = -40
COARSE_BITS = 5
LOW_EXP = -1000  # 2**-1000 ~ 9.3e-302
_SHIFT = 52 - MANT_BITS
_BASE = (1023 + MIN_EXP) << MANT_BITS
_CSHIFT = 52 - COARSE_BITS
_CBASE = (1023 + LOW_EXP) << COARSE_BITS
COARSE_SPAN = (MIN_EXP - LOW_EXP) << COARSE_BITS
FINE_SPAN = (-1 - MIN_EXP) << MANT_BITS  # exponents MIN_EXP .. -2
HIST_HALF = 1 + COARSE_SPAN + FINE_SPAN  # buckets for p in [0, 0.5)
HIST_BINS = 2 * HIST_HALF  # 141,314: below 2**18, as sparse_score_hists' radix sort needs

#: The layout before the coarse range existed (q < 2**-40 all in bucket 0); stored states
#: of that layout are mapped into this one when decoded (:func:`upgrade_v1_bins`).
V1_HALF = FINE_SPAN + 1
V1_BINS = 2 * V1_HALF

#: Coarse cells of a score for the joint (predicted class, class, score cell) counts of
#: multiclass states: cell = floor(p * JOINT_CELLS) for p < 0.5, mirrored on 1 - p above
#: (as the buckets). Cell edges j / 64 are bucket edges, so every histogram bucket lies in
#: one cell (:func:`bin_cells`).
JOINT_CELLS = 64

#: Reductions may be reassociated (so LLVM vectorises them); no nnan/ninf/arcp: IEEE
#: semantics of NaN, inf and division are kept.
_REASSOC = {"reassoc", "contract"}


@nb.njit(cache=True, inline="always")
def _half_bin(q: float) -> int:
    if q < 2.0**MIN_EXP:
        if q < 2.0**LOW_EXP:
            return 0
        return (np.float64(q).view(np.int64) >> _CSHIFT) - _CBASE + 1
    b = (np.float64(q).view(np.int64) >> _SHIFT) - _BASE + 1 + COARSE_SPAN
    if b > HIST_HALF - 1:
        b = HIST_HALF - 1
    return b


@nb.njit(cache=True, inline="always")
def _bin(p: float) -> int:
    if p < 0.5:
        return _half_bin(p)
    return HIST_BINS - 1 - _half_bin(1.0 - p)


def bin_lower_edges() -> np.ndarray:
    """Lower edge of q = min(p, 1 - p) of every bucket of a half (length HIST_HALF)."""
    i = np.arange(HIST_HALF, dtype=np.int64)
    out = np.zeros(HIST_HALF)
    coarse = (i >= 1) & (i <= COARSE_SPAN)
    j = i[coarse] - 1
    out[coarse] = np.ldexp(1.0 + (j & ((1 << COARSE_BITS) - 1)) / 2.0**COARSE_BITS, (j >> COARSE_BITS) + LOW_EXP)
    fine = i > COARSE_SPAN
    j = i[fine] - 1 - COARSE_SPAN
    out[fine] = np.ldexp(1.0 + (j & ((1 << MANT_BITS) - 1)) / 2.0**MANT_BITS, (j >> MANT_BITS) + MIN_EXP)
    return out


def bin_cells() -> np.ndarray:
    """The :data:`JOINT_CELLS` cell of every histogram bucket (length HIST_BINS)."""
    lo = bin_lower_edges()
    hi = np.append(lo[1:], 0.5)
    mid = 0.5 * (lo + hi)  # strictly inside the bucket
    p = np.concatenate([mid, 1.0 - mid[::-1]])
    upper = JOINT_CELLS - 1 - np.minimum(np.floor((1.0 - p) * JOINT_CELLS), JOINT_CELLS // 2 - 1)
    return np.where(p < 0.5, np.floor(p * JOINT_CELLS), upper).astype(np.int64)


@nb.njit(cache=True, inline="always")
def _cell(p: float) -> int:
    if p < 0.5:
        return np.int64(p * JOINT_CELLS)
    return JOINT_CELLS - 1 - min(np.int64((1.0 - p) * JOINT_CELLS), JOINT_CELLS // 2 - 1)


def upgrade_v1_bins(idx: np.ndarray) -> np.ndarray:
    """Map bucket indices of the first layout (``V1_BINS``) into the current one.

    Old bucket ``i >= 1`` of a half is the same interval as new bucket ``COARSE_SPAN + i``;
    old bucket 0 (every q < 2**-40) goes to the coarse bucket just below 2**-40, which keeps
    its order relative to all other old buckets.
    """
    idx = np.asarray(idx, dtype=np.int64)
    low = idx < V1_HALF
    half = np.where(low, idx, V1_BINS - 1 - idx)
    mapped = COARSE_SPAN + np.maximum(half, 0)
    mapped = np.where(half == 0, COARSE_SPAN, mapped)
    return np.where(low, mapped, HIST_BINS - 1 - mapped)


@nb.njit(cache=True)
def score_bins(p: np.ndarray) -> np.ndarray:
    """Bucket index of every score (for tests and engines)."""
    out = np.empty(p.shape[0], dtype=np.int64)
    for i in range(p.shape[0]):
        out[i] = _bin(p[i])
    return out


@nb.njit(cache=True, inline="always")
def _central(n, m, s1, s2, s3, s4):
    """Central moment sums about the exact mean from sums of d = x - m (m: a rough mean).

    Returns (mean, M2, M3, M4); the shift by delta = s1 / n is the rounding correction.
    """
    dl = s1 / n
    m2 = s2 - n * dl * dl
    m3 = s3 - 3.0 * dl * s2 + 2.0 * n * dl * dl * dl
    m4 = s4 - 4.0 * dl * s3 + 6.0 * dl * dl * s2 - 3.0 * n * dl * dl * dl * dl
    if m2 < 0.0:
        m2 = 0.0
    if m4 < 0.0:
        m4 = 0.0
    return m + dl, m2, m3, m4


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def moments(x: np.ndarray):
    """(n, mean, M2, M3, M4) of a 1-D array in two passes."""
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        s += x[i]
    m = s / n
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for i in range(n):
        d = x[i] - m
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
    mean, m2, m3, m4 = _central(n, m, s1, s2, s3, s4)
    return n, mean, m2, m3, m4


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


# --------------------------------------------------------------------------- fused passes
@nb.njit(cache=True)
def _check_proba_scan(proba: np.ndarray):
    """:func:`check_proba` element by element (its reference: any non-finite or out-of-range value)."""
    n, k = proba.shape
    bad = 0
    lo = np.inf
    hi = -np.inf
    dev = 0.0
    for i in range(n):
        rs = 0.0
        for j in range(k):
            v = proba[i, j]
            if not np.isfinite(v):
                bad += 1
                continue
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            rs += v
        d = abs(rs - 1.0)
        if d > dev:
            dev = d
    return bad, lo, hi, dev


@nb.njit(cache=True, nogil=True)
def _first_equal(proba: np.ndarray, x: float) -> float:
    """The first element (row-major) equal to ``x``: which zero, +0.0 or -0.0, a scan keeps."""
    n, k = proba.shape
    for i in range(n):
        for j in range(k):
            if proba[i, j] == x:
                return proba[i, j]
    return x


@nb.njit(cache=True, nogil=True)
def check_proba(proba: np.ndarray):
    """One pass over an (n, k) float64 matrix: (non-finite count, min, max, max |row sum - 1|).

    Four rows at a time (four independent row sums, each added in column order as a plain
    scan adds it, so the same sums); a matrix with a non-finite value or a value outside
    [0, 1] is scanned again element by element, and a zero minimum or maximum is read as
    the scan would keep it (its first zero), so every result is the scan's.
    """
    n, k = proba.shape
    lo = np.inf
    hi = -np.inf
    dev = 0.0
    finite = True
    i = 0
    while i + 4 <= n:
        r0 = 0.0
        r1 = 0.0
        r2 = 0.0
        r3 = 0.0
        for j in range(k):
            a = proba[i, j]
            b = proba[i + 1, j]
            c = proba[i + 2, j]
            d = proba[i + 3, j]
            r0 += a
            r1 += b
            r2 += c
            r3 += d
            lo = min(lo, min(min(a, b), min(c, d)))
            hi = max(hi, max(max(a, b), max(c, d)))
        if not np.isfinite(r0 + r1 + r2 + r3):  # a non-finite value (or an overflow)
            finite = False
            break
        dev = max(dev, max(max(abs(r0 - 1.0), abs(r1 - 1.0)), max(abs(r2 - 1.0), abs(r3 - 1.0))))
        i += 4
    while finite and i < n:
        r0 = 0.0
        for j in range(k):
            a = proba[i, j]
            r0 += a
            lo = min(lo, a)
            hi = max(hi, a)
        if not np.isfinite(r0):
            finite = False
            break
        dev = max(dev, abs(r0 - 1.0))
        i += 1
    if not finite or not (0.0 <= lo and hi <= 1.0):
        return _check_proba_scan(proba)
    if lo == 0.0:
        lo = _first_equal(proba, 0.0)
    if hi == 0.0:
        hi = _first_equal(proba, 0.0)
    return 0, lo, hi, dev


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def all_finite(x: np.ndarray) -> bool:
    """No NaN / inf in a float64 array (``0 * x`` sums to 0 exactly then; vectorised)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * 0.0
    return s == 0.0


@nb.njit(cache=True)
def has_fraction(x: np.ndarray) -> bool:
    """True when some value is not integral (stops at the first one)."""
    for i in range(x.shape[0]):
        if x[i] != np.floor(x[i]):
            return True
    return False


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def _column_moments(x: np.ndarray, c: int):
    """(n, mean, M2, M3, M4) of column ``c`` of a C-order matrix (two passes, scalar sums)."""
    n = x.shape[0]
    t = 0.0
    for i in range(n):
        t += x[i, c]
    m = t / n
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for i in range(n):
        d = x[i, c] - m
        d2 = d * d
        s1 += d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
    return _central(n, m, s1, s2, s3, s4)


#: Sums of the row-major moments: products may be fused into their sums (as the reassociating
#: flags let LLVM fuse them), but no reassociation, so every column is summed row by row.
_CONTRACT = {"contract"}


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def _central_row(mom, c, n, m, s1, s2, s3, s4) -> None:
    """Row ``c`` of ``mom``: (n, mean, M2, M3, M4) from the sums (:func:`_central`)."""
    mean, m2, m3, m4 = _central(n, m, s1, s2, s3, s4)
    mom[c, 0] = n
    mom[c, 1] = mean
    mom[c, 2] = m2
    mom[c, 3] = m3
    mom[c, 4] = m4


@nb.njit(cache=True, nogil=True, fastmath=_CONTRACT)
def _rowmajor_moments(x: np.ndarray, mom: np.ndarray) -> None:
    """(n, mean, M2, M3, M4) of every column of a C-order matrix in two row-major passes.

    Every column's sums are added row by row (``d2 * d`` and ``d2 * d2`` fused into their
    sums), four columns at a time in registers, then finished by :func:`_central_row`.
    """
    n, k = x.shape
    m = np.zeros(k)
    c0 = 0
    while c0 + 4 <= k:
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for i in range(n):
            a0 += x[i, c0]
            a1 += x[i, c0 + 1]
            a2 += x[i, c0 + 2]
            a3 += x[i, c0 + 3]
        m[c0] = a0
        m[c0 + 1] = a1
        m[c0 + 2] = a2
        m[c0 + 3] = a3
        c0 += 4
    for c in range(c0, k):
        a0 = 0.0
        for i in range(n):
            a0 += x[i, c]
        m[c] = a0
    for c in range(k):
        m[c] /= n
    s = np.zeros((k, 4))
    c0 = 0
    while c0 + 4 <= k:
        ma = m[c0]
        mb = m[c0 + 1]
        mc = m[c0 + 2]
        md = m[c0 + 3]
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        a4 = 0.0
        b1 = 0.0
        b2 = 0.0
        b3 = 0.0
        b4 = 0.0
        c1 = 0.0
        c2 = 0.0
        c3 = 0.0
        c4 = 0.0
        e1 = 0.0
        e2 = 0.0
        e3 = 0.0
        e4 = 0.0
        for i in range(n):
            d = x[i, c0] - ma
            d2 = d * d
            a1 += d
            a2 += d2
            a3 += d2 * d
            a4 += d2 * d2
            d = x[i, c0 + 1] - mb
            d2 = d * d
            b1 += d
            b2 += d2
            b3 += d2 * d
            b4 += d2 * d2
            d = x[i, c0 + 2] - mc
            d2 = d * d
            c1 += d
            c2 += d2
            c3 += d2 * d
            c4 += d2 * d2
            d = x[i, c0 + 3] - md
            d2 = d * d
            e1 += d
            e2 += d2
            e3 += d2 * d
            e4 += d2 * d2
        s[c0, 0] = a1
        s[c0, 1] = a2
        s[c0, 2] = a3
        s[c0, 3] = a4
        s[c0 + 1, 0] = b1
        s[c0 + 1, 1] = b2
        s[c0 + 1, 2] = b3
        s[c0 + 1, 3] = b4
        s[c0 + 2, 0] = c1
        s[c0 + 2, 1] = c2
        s[c0 + 2, 2] = c3
        s[c0 + 2, 3] = c4
        s[c0 + 3, 0] = e1
        s[c0 + 3, 1] = e2
        s[c0 + 3, 2] = e3
        s[c0 + 3, 3] = e4
        c0 += 4
    for c in range(c0, k):
        mc = m[c]
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        a4 = 0.0
        for i in range(n):
            d = x[i, c] - mc
            d2 = d * d
            a1 += d
            a2 += d2
            a3 += d2 * d
            a4 += d2 * d2
        s[c, 0] = a1
        s[c, 1] = a2
        s[c, 2] = a3
        s[c, 3] = a4
    for c in range(k):
        _central_row(mom, c, n, m[c], s[c, 0], s[c, 1], s[c, 2], s[c, 3])


@nb.njit(cache=True, nogil=True)
def class_pass(proba, y_idx, p_idx, hist_classes, labelled, eps, pos, neg, pred, keys):
    """Score histograms, per-column moments and the clipped probability of the true class.

    Returns ``pos, neg, pred`` (h, HIST_BINS) histograms (``pred``: the class's score of
    the rows *predicted* as that class, the joint predicted class x score bin that
    label-free estimation needs), ``joint`` (k, k, JOINT_CELLS) counts of (predicted
    class, class, cell of that class's score) for multiclass (empty otherwise), ``mom`` (k, 5) rows of (n, mean, M2, M3, M4) of every
    column, and ``p_true`` (n,) = clip(p[i, y_i], eps, 1 - eps) (empty when not labelled).
    ``pos, neg, pred`` are zeroed (h, HIST_BINS) int64 outputs allocated by the caller.
    Small batches pass an (n, h) int64 ``keys`` instead (and empty histograms): it receives
    every row's bucket of every histogram class, from which the caller builds sparse
    histograms without touching dense ones. (Large multiclass batches: :func:`class_pass3`.)
    """
    n, k = proba.shape
    h = hist_classes.shape[0]
    sparse = keys.shape[0] > 0
    joint = np.zeros((k, k, JOINT_CELLS) if (h == k and k > 2) else (0, 0, 0), dtype=np.int64)
    if h == k and k > 2:  # every class: one row-major pass
        for i in range(n):
            yi = y_idx[i] if labelled else -1
            pi = p_idx[i]
            for c in range(k):
                x = proba[i, c]
                joint[pi, c, _cell(x)] += 1
                b = _bin(x)
                if sparse:
                    keys[i, c] = b
                    continue
                if c == yi:
                    pos[c, b] += 1
                else:
                    neg[c, b] += 1
                if c == pi:
                    pred[c, b] += 1
    elif sparse:
        for j in range(h):
            c = hist_classes[j]
            for i in range(n):
                keys[i, j] = _bin(proba[i, c])
    else:
        for j in range(h):
            c = hist_classes[j]
            if labelled:
                for i in range(n):
                    b = _bin(proba[i, c])
                    if y_idx[i] == c:
                        pos[j, b] += 1
                    else:
                        neg[j, b] += 1
                    if p_idx[i] == c:
                        pred[j, b] += 1
            else:
                for i in range(n):
                    b = _bin(proba[i, c])
                    neg[j, b] += 1
                    if p_idx[i] == c:
                        pred[j, b] += 1
    mom = np.empty((k, 5))
    if k > 2:
        _rowmajor_moments(proba, mom)
    else:
        mean, m2, m3, m4 = _column_moments(proba, 1)
        mom[1, 0] = n
        mom[1, 1] = mean
        mom[1, 2] = m2
        mom[1, 3] = m3
        mom[1, 4] = m4
    if k == 2:  # moments of 1 - x: mean mirrored, odd central moments change sign
        mom[0, 0] = n
        mom[0, 1] = 1.0 - mom[1, 1]
        mom[0, 2] = mom[1, 2]
        mom[0, 3] = -mom[1, 3]
        mom[0, 4] = mom[1, 4]
    p_true = np.empty(n if labelled else 0)
    if labelled:
        lo = eps
        hi = 1.0 - eps
        for i in range(n):
            p = proba[i, y_idx[i]]
            p_true[i] = min(max(p, lo), hi)
    return pos, neg, pred, joint, mom, p_true


@nb.njit(cache=True, nogil=True)
def confusion_counts(y_idx, p_idx, k):
    """``(confusion, pred_counts)``: the (k, k) int64 counts of (true, predicted) class index
    pairs and the (k,) counts of the predicted ones, as ``np.bincount`` gives them, in one
    pass (four partial tables, so that repeated cells do not wait on each other). ``y_idx``
    empty: no confusion (an unlabelled batch), only the predicted counts.
    """
    n = p_idx.shape[0]
    labelled = y_idx.shape[0] > 0
    part = np.zeros((4, k, k), dtype=np.int64)
    pred4 = np.zeros((4, k), dtype=np.int64)
    if labelled:
        for i in range(n):
            part[i & 3, y_idx[i], p_idx[i]] += 1
        confusion = part[0] + part[1] + part[2] + part[3]
        pred = np.zeros(k, dtype=np.int64)
        for a in range(k):
            for b in range(k):
                pred[b] += confusion[a, b]
        return confusion, pred
    for i in range(n):
        pred4[i & 3, p_idx[i]] += 1
    return np.zeros((0, 0), dtype=np.int64), pred4[0] + pred4[1] + pred4[2] + pred4[3]


@nb.njit(cache=True, nogil=True)
def brier_rows(proba, y_idx):
    """Multiclass Brier terms ``sum_c p_c**2 - 2 p_y + 1`` of every row, as numpy computes
    ``einsum("ij,ij->i", p, p) - 2.0 * p[i, y] + 1.0`` with two-lane (SSE2) vectors over fewer
    than 8 columns: even columns summed in one lane, odd ones in the other, the lanes added
    last. Callers check the equality on this machine first (see ``state._brier_terms``).
    """
    out = np.empty(proba.shape[0])
    brier_rows_into(proba, y_idx, out, 0, proba.shape[0])
    return out


@nb.njit(cache=True, nogil=True)
def macro_prf_draws(cm, zero_division):
    """Macro precision, recall and F1 over every class of each (k, k) matrix of ``cm``
    (B, k, k), float64: ``intervals.macro_prf(cm, all classes, zero_division)`` with numpy's
    order of additions for fewer than 8 classes (column sums row by row, row sums and the
    class means left to right). Callers check the equality on this machine first (see
    ``registry._prf_kernel_exact``)."""
    b_, k, _ = cm.shape
    out = np.empty((b_, 3))
    pred = np.empty(k)
    for b in range(b_):
        for j in range(k):
            pred[j] = cm[b, 0, j]
        for i in range(1, k):
            for j in range(k):
                pred[j] += cm[b, i, j]
        sp = 0.0
        sr = 0.0
        sf = 0.0
        for c in range(k):
            true = cm[b, c, 0]
            for j in range(1, k):
                true += cm[b, c, j]
            tp = cm[b, c, c]
            pc = pred[c]
            prec = tp / pc if pc > 0 else zero_division
            rec = tp / true if true > 0 else zero_division
            den = pc + true
            f1 = 2 * tp / den if den > 0 else zero_division
            if c == 0:
                sp = prec
                sr = rec
                sf = f1
            else:
                sp += prec
                sr += rec
                sf += f1
        out[b, 0] = sp / k
        out[b, 1] = sr / k
        out[b, 2] = sf / k
    return out


@nb.njit(cache=True, nogil=True)
def brier_rows_into(proba, y_idx, out, start, stop):
    """:func:`brier_rows` of rows ``start:stop`` into ``out`` (the same terms; threads split
    the rows)."""
    k = proba.shape[1]
    for i in range(start, stop):
        a = 0.0
        b = 0.0
        for c in range(0, k - 1, 2):
            a += proba[i, c] * proba[i, c]
            b += proba[i, c + 1] * proba[i, c + 1]
        if k % 2:
            a += proba[i, k - 1] * proba[i, k - 1]
        out[i] = ((a + b) - 2.0 * proba[i, y_idx[i]]) + 1.0


@nb.njit(cache=True, nogil=True)
def class_pass3(proba, y_idx, p_idx, labelled, eps, counts3):
    """:func:`class_pass` of a large multiclass batch (every class a histogram class) with
    its three histograms counted side by side: ``counts3`` (k, HIST_BINS, 3), zeroed int32
    (fewer than 2**31 rows), gets the ``pos``, ``neg`` and ``pred`` counts of every bucket
    (one cache line per row and class instead of two in three arrays, half the memory; read
    them with :func:`split_counts3`). Returns ``joint, mom, p_true`` as :func:`class_pass`.
    """
    n, k = proba.shape
    joint = np.zeros((k, k, JOINT_CELLS), dtype=np.int64)
    for i in range(n):
        yi = y_idx[i] if labelled else -1
        pi = p_idx[i]
        for c in range(k):
            x = proba[i, c]
            joint[pi, c, _cell(x)] += 1
            b = _bin(x)
            counts3[c, b, 0 if c == yi else 1] += 1
            if c == pi:
                counts3[c, b, 2] += 1
    if labelled:
        mom, p_true = class_moments_true(proba, y_idx, eps)
        return joint, mom, p_true
    mom = np.empty((k, 5))
    _rowmajor_moments(proba, mom)
    return joint, mom, np.empty(0)


@nb.njit(cache=True, nogil=True)
def pair_offsets(k, cells):
    """The pair count tables' layout for a branch-free hot loop: pair ``r`` is classes
    ``(first[r], second[r])`` (``c < d`` in order), and ``offset[t, r]`` the flat start of
    its (cells x cells) block for a row of class ``t`` (group 0: class ``first[r]``, 1:
    class ``second[r]``, 2: another) in a (pairs, 3, cells, cells) array."""
    m = k * (k - 1) // 2
    first = np.empty(m, dtype=np.int64)
    second = np.empty(m, dtype=np.int64)
    offset = np.empty((k, m), dtype=np.int64)
    r = 0
    for c in range(k):
        for d in range(c + 1, k):
            first[r] = c
            second[r] = d
            for t in range(k):
                g = 0 if t == c else (1 if t == d else 2)
                offset[t, r] = (r * 3 + g) * cells * cells
            r += 1
    return first, second, offset


@nb.njit(cache=True, nogil=True)
def class_pass3_pairs(proba, y_idx, p_idx, counts3, cell_of_bucket, pairs, bins):
    """The counting part of :func:`class_pass3` of a labelled batch with the AUC pair counts of
    :func:`perfkit.metrics._auc_cov.pair_counts` counted in the same pass (every row's buckets
    are computed once for both): ``pairs`` (k (k - 1) / 2, 3, CELLS, CELLS), zeroed int64,
    gets them; ``cell_of_bucket`` is the uint8 cell of every bucket. Integer counts, so the
    same numbers as the separate passes. ``bins`` (n, k) int32 receives every row's bucket of
    every class (for :func:`macro_influence_ss_bins`; (0, k): not kept). Returns ``joint``; the moments and
    ``p_true`` are :func:`class_moments_true`'s.
    """
    n, k = proba.shape
    joint = np.zeros((k, k, JOINT_CELLS), dtype=np.int64)
    m = pairs.shape[0]
    cl = pairs.shape[2]
    flat = pairs.reshape(-1)
    first, second, offset = pair_offsets(k, cl)
    keep = bins.shape[0] > 0
    row_cell = np.empty(k, dtype=np.int64)  # cell * CELLS: the row index of the (cell, cell) block
    col_cell = np.empty(k, dtype=np.int64)
    for i in range(n):
        yi = y_idx[i]
        pi = p_idx[i]
        for c in range(k):
            x = proba[i, c]
            joint[pi, c, _cell(x)] += 1
            b = _bin(x)
            if keep:
                bins[i, c] = b
            cell = np.int64(cell_of_bucket[b])
            row_cell[c] = cell * cl
            col_cell[c] = cell
            counts3[c, b, np.int64(c != yi)] += 1
            counts3[c, b, 2] += np.int64(c == pi)
        for r in range(m):
            flat[offset[yi, r] + row_cell[first[r]] + col_cell[second[r]]] += 1
    return joint


@nb.njit(cache=True, nogil=True)
def class_moments_true(proba, y_idx, eps):
    """The rest of :func:`class_pass3` of a labelled batch (also run on another thread than
    :func:`class_pass3_pairs`): ``mom`` (k, 5) moments of every column and ``p_true``, the
    clipped probability of every row's class (the same computations, so the same numbers)."""
    n, k = proba.shape
    mom = np.empty((k, 5))
    _rowmajor_moments(proba, mom)
    p_true = np.empty(n)
    lo = eps
    hi = 1.0 - eps
    for i in range(n):
        p = proba[i, y_idx[i]]
        p_true[i] = min(max(p, lo), hi)
    return mom, p_true


@nb.njit(cache=True, nogil=True)
def _split_counts3_into(counts3, k0, c0, k1, c1, k2, c2):
    """:func:`split_counts3`'s scan into buffers of the largest size; returns the lengths."""
    h, bins, _ = counts3.shape
    a0 = 0
    a1 = 0
    a2 = 0
    for j in range(h):
        for b in range(bins):
            x = counts3[j, b, 0]
            y = counts3[j, b, 1]
            z = counts3[j, b, 2]
            if x | y | z:
                key = j * bins + b
                k0[a0] = key
                c0[a0] = x
                a0 += x != 0
                k1[a1] = key
                c1[a1] = y
                a1 += y != 0
                k2[a2] = key
                c2[a2] = z
                a2 += z != 0
    return a0, a1, a2


def split_counts3(counts3: np.ndarray):
    """(keys, counts) of the non-zero cells of ``counts3[:, :, 0]``, ``[:, :, 1]`` and
    ``[:, :, 2]`` (the ``pos``, ``neg`` and ``pred`` histograms of :func:`class_pass`), each
    as flat keys ``j * bins + bucket`` in ascending order with int64 counts: what
    ``np.flatnonzero`` of each dense array and its values give, in one scan (into buffers of
    the largest size, untouched beyond what is written, then copied)."""
    size = counts3.shape[0] * counts3.shape[1]
    bufs = [np.empty(size, dtype=np.int64) for _ in range(6)]
    lengths = _split_counts3_into(counts3, *bufs)
    return tuple((bufs[2 * t][:m].copy(), bufs[2 * t + 1][:m].copy()) for t, m in enumerate(lengths))


@nb.njit(cache=True, nogil=True)
def auc_keys(proba, y_idx, c):
    """Sort keys of class ``c``'s scores: the float64 bits (monotone for p >= 0) shifted
    left once, the low bit set for rows of class ``c`` (ties: negatives sort first)."""
    keys = np.empty(proba.shape[0], dtype=np.int64)
    auc_keys_into(proba, y_idx, c, keys)
    return keys


@nb.njit(cache=True, nogil=True)
def auc_keys_into(proba, y_idx, c, keys):
    """:func:`auc_keys` into ``keys`` (int64, one per row), an array the caller allocates: a
    large one from numpy is mapped in fewer page faults than one allocated here."""
    n = proba.shape[0]
    for i in range(n):
        p = proba[i, c] + 0.0  # -0.0 -> +0.0
        keys[i] = (np.float64(p).view(np.int64) << 1) | (1 if y_idx[i] == c else 0)


@nb.njit(cache=True, nogil=True)
def auc_from_keys(keys: np.ndarray):
    """Exact AUC (ties count one half) and DeLong's variance from sorted :func:`auc_keys`.

    Placement values without branching on the label: within a tie group negatives come
    first, so a positive's V10 is (negatives so far + negatives before its group) / 2N; a
    backward pass gives each negative's V01 the same way. Returns (auc, var, n_pos, n_neg).
    """
    n = keys.shape[0]
    P = 0
    for i in range(n):
        P += keys[i] & 1
    N = n - P
    if P == 0 or N == 0:
        return np.nan, np.nan, P, N
    negs = 0
    g_negs = 0
    prev = -1
    sv = 0.0
    sv2 = 0.0
    for i in range(n):
        key = keys[i]
        v = key >> 1
        lab = key & 1
        if v != prev:
            g_negs = negs
            prev = v
        x = 0.5 * (negs + g_negs) * lab
        sv += x
        sv2 += x * x
        negs += 1 - lab
    auc = sv / (P * N)
    s10 = (sv2 / (N * N) - P * auc * auc) if P > 1 else 0.0
    poss = 0
    g_poss = 0
    prev = -1
    su = 0.0
    su2 = 0.0
    for i in range(n - 1, -1, -1):
        key = keys[i]
        v = key >> 1
        lab = key & 1
        if v != prev:
            g_poss = poss
            prev = v
        x = 0.5 * (poss + g_poss) * (1 - lab)
        su += x
        su2 += x * x
        poss += lab
    u = su / (P * N)  # equals auc up to rounding
    s01 = su2 / (P * P) - N * u * u
    var = 0.0
    if P > 1:
        var += max(s10, 0.0) / (P - 1) / P
    if N > 1:
        var += max(s01, 0.0) / (N - 1) / N
    return auc, var, P, N


@nb.njit(cache=True, nogil=True)
def placement_values(pos: np.ndarray, neg: np.ndarray):
    """Per bucket of a class's histograms (dense, or compact: only occupied buckets, as
    :func:`aligned_counts` gives them; empty buckets add nothing to the sums, so the values
    at the occupied ones are the same): the centred, scaled influence of a positive and of a
    negative row, ``(V10_b - A) / P`` and ``(V01_b - A) / N`` from binned placement values.
    The AUC's linearisation is the sum of these over the rows. Returns (inf_pos, inf_neg,
    defined): zeros and False without positives or negatives. The one place this formula
    is written."""
    nb_ = pos.shape[0]
    P = 0
    N = 0
    for b in range(nb_):
        P += pos[b]
        N += neg[b]
    inf_pos = np.zeros(nb_)
    inf_neg = np.zeros(nb_)
    if P == 0 or N == 0:
        return inf_pos, inf_neg, False
    below = 0
    num = 0.0
    for b in range(nb_):
        num += pos[b] * (below + 0.5 * neg[b])
        below += neg[b]
    a = num / (P * N)
    below = 0
    above = P
    for b in range(nb_):
        above -= pos[b]
        inf_pos[b] = ((below + 0.5 * neg[b]) / N - a) / P
        inf_neg[b] = ((above + 0.5 * pos[b]) / P - a) / N
        below += neg[b]
    return inf_pos, inf_neg, True


@nb.njit(cache=True, nogil=True)
def placement_tables(pos: np.ndarray, neg: np.ndarray):
    """:func:`placement_values` of dense histogram rows: (inf_pos, inf_neg) per bin."""
    inf_pos, inf_neg, _ = placement_values(pos, neg)
    return inf_pos, inf_neg


@nb.njit(cache=True, nogil=True)
def class_buckets(pos_keys, pos_counts, neg_keys, neg_counts, c, bins):
    """Class ``c``'s occupied buckets (``bucket``, pos count, neg count), ascending, from
    sparse histograms of flat keys ``class * bins + bucket`` (every class's in one array)."""
    pa = np.searchsorted(pos_keys, c * bins)
    pb = np.searchsorted(pos_keys, (c + 1) * bins)
    na = np.searchsorted(neg_keys, c * bins)
    nb_ = np.searchsorted(neg_keys, (c + 1) * bins)
    return aligned_counts(pos_keys[pa:pb] - c * bins, pos_counts[pa:pb], neg_keys[na:nb_] - c * bins,
                          neg_counts[na:nb_])


@nb.njit(cache=True, nogil=True)
def placement_tables_sparse(pos_keys, pos_counts, neg_keys, neg_counts, classes, inf_pos, inf_neg):
    """:func:`placement_tables` of the classes ``classes`` from sparse histograms (ascending
    flat keys ``class * bins + bucket`` with int64 counts, as :func:`split_counts3` gives
    them), into the caller's zeroed (len(classes), bins) ``inf_pos, inf_neg``, written only
    where :func:`macro_influence_ss_rows` reads them: ``inf_pos`` at buckets holding a
    positive, ``inf_neg`` at buckets holding a negative. Empty buckets add nothing to
    :func:`placement_tables`' sums, so these are its values there, from the occupied buckets
    only.
    """
    m = classes.shape[0]
    bins = inf_pos.shape[1]
    for j in range(m):
        ub, up, un = class_buckets(pos_keys, pos_counts, neg_keys, neg_counts, classes[j], bins)
        v_pos, v_neg, defined = placement_values(up, un)
        if not defined:
            continue
        for t in range(ub.shape[0]):
            if up[t]:
                inf_pos[j, ub[t]] = v_pos[t]
            if un[t]:
                inf_neg[j, ub[t]] = v_neg[t]


@nb.njit(cache=True, nogil=True)
def macro_influence_ss_rows(proba, y_idx, classes, inf_pos, inf_neg, start, stop):
    """Sum over rows ``start:stop`` of the squared influence of the mean AUC of ``classes``.

    ``inf_pos`` / ``inf_neg`` are (len(classes), HIST_BINS) tables of
    :func:`placement_tables`; over all rows and divided by len(classes)**2 this is the OvR
    macro AUC's variance including the covariances between the classes' AUCs. Threads split
    the rows.
    """
    ss = 0.0
    m = classes.shape[0]
    for i in range(start, stop):
        psi = 0.0
        yi = y_idx[i]
        for j in range(m):
            c = classes[j]
            b = _bin(proba[i, c])
            psi += inf_pos[j, b] if yi == c else inf_neg[j, b]
        ss += psi * psi
    return ss


@nb.njit(cache=True, nogil=True)
def macro_influence_ss_bins(bins, y_idx, classes, inf_pos, inf_neg, start, stop):
    """:func:`macro_influence_ss_rows` from every row's buckets ``bins`` (n, k) (as
    :func:`class_pass3_pairs` writes them) instead of the scores: the same sum, in the same
    order, without computing the buckets again."""
    ss = 0.0
    m = classes.shape[0]
    for i in range(start, stop):
        psi = 0.0
        yi = y_idx[i]
        for j in range(m):
            c = classes[j]
            b = bins[i, c]
            psi += inf_pos[j, b] if yi == c else inf_neg[j, b]
        ss += psi * psi
    return ss


@nb.njit(cache=True, inline="always", fastmath=_REASSOC)
def _acc(d, s1, s2, s3, s4):
    d2 = d * d
    return s1 + d, s2 + d2, s3 + d2 * d, s4 + d2 * d2


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def regression_shifts(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """Shifts ``K`` of :func:`regression_moments`' seven series (y, yhat, e, |e|, e**2,
    |e| / |y|, sMAPE term): their means over a strided sample of at most 1024 rows."""
    n = y.shape[0]
    step = max(1, n // 1024)
    m0 = m1 = m2_ = m3_ = m4_ = m5 = m6 = 0.0
    cnt = 0
    cnt5 = 0
    for i in range(0, n, step):
        a = y[i]
        b = yhat[i]
        d = a - b
        ad = abs(d)
        ay = abs(a)
        den = ay + abs(b)
        m0 += a
        m1 += b
        m2_ += d
        m3_ += ad
        m4_ += d * d
        if ay != 0.0:
            m5 += ad / ay
            cnt5 += 1
        if den != 0.0:
            m6 += 2.0 * ad / den
        cnt += 1
    out = np.empty(7)
    out[0] = m0 / cnt
    out[1] = m1 / cnt
    out[2] = m2_ / cnt
    out[3] = m3_ / cnt
    out[4] = m4_ / cnt
    out[5] = m5 / cnt5 if cnt5 else 1.0
    out[6] = m6 / cnt
    return out


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def regression_sums_values(y: np.ndarray, yhat: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Power sums (s1..s4) around the shifts of y (row 0) and yhat (row 1); row 2: the
    cross sums sum e**2 (y - K_y) and sum e**2 (y - K_y)**2."""
    n = y.shape[0]
    m0 = shifts[0]
    m1 = shifts[1]
    a0 = b0 = c0 = d0 = 0.0
    a1 = b1 = c1_ = d1 = 0.0
    x1 = 0.0
    x2 = 0.0
    for i in range(n):
        a = y[i]
        b = yhat[i]
        a0, b0, c0, d0 = _acc(a - m0, a0, b0, c0, d0)
        a1, b1, c1_, d1 = _acc(b - m1, a1, b1, c1_, d1)
        d = a - b
        dy = a - m0
        t = d * d * dy
        x1 += t
        x2 += t * dy
    out = np.zeros((3, 4))
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = a0, b0, c0, d0
    out[1, 0], out[1, 1], out[1, 2], out[1, 3] = a1, b1, c1_, d1
    out[2, 0] = x1
    out[2, 1] = x2
    return out


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def regression_sums_errors(y: np.ndarray, yhat: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Power sums (s1..s4) around the shifts of e (row 0), |e| (row 1) and e**2 (row 2)."""
    n = y.shape[0]
    m2_ = shifts[2]
    m3_ = shifts[3]
    m4_ = shifts[4]
    a2 = b2 = c2_ = d2_ = 0.0
    a3 = b3 = c3 = d3 = 0.0
    a4 = b4 = c4 = d4 = 0.0
    for i in range(n):
        d = y[i] - yhat[i]
        a2, b2, c2_, d2_ = _acc(d - m2_, a2, b2, c2_, d2_)
        a3, b3, c3, d3 = _acc(abs(d) - m3_, a3, b3, c3, d3)
        a4, b4, c4, d4 = _acc(d * d - m4_, a4, b4, c4, d4)
    out = np.zeros((3, 4))
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = a2, b2, c2_, d2_
    out[1, 0], out[1, 1], out[1, 2], out[1, 3] = a3, b3, c3, d3
    out[2, 0], out[2, 1], out[2, 2], out[2, 3] = a4, b4, c4, d4
    return out


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def regression_sums_relative(y: np.ndarray, yhat: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Power sums around the shifts of |e| / |y| (over y != 0; row 0, its count in
    ``[0, 0]`` of row 2) and of the sMAPE term (0/0 := 0; row 1)."""
    n = y.shape[0]
    m5 = shifts[5]
    m6 = shifts[6]
    a5 = b5 = c5 = d5 = 0.0
    a6 = b6 = c6 = d6 = 0.0
    nz = 0.0
    for i in range(n):
        a = y[i]
        b = yhat[i]
        ad = abs(a - b)
        ay = abs(a)
        den = ay + abs(b)
        # selects, not a product with a 0/1 weight: this form vectorises (4x faster)
        nzf = ay != 0.0
        q = ad / (ay if nzf else 1.0) - m5
        q = q if nzf else 0.0
        nz += 1.0 if nzf else 0.0
        a5, b5, c5, d5 = _acc(q, a5, b5, c5, d5)
        sp = 2.0 * ad / (den if den != 0.0 else 1.0)
        a6, b6, c6, d6 = _acc(sp - m6, a6, b6, c6, d6)
    out = np.zeros((3, 4))
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = a5, b5, c5, d5
    out[1, 0], out[1, 1], out[1, 2], out[1, 3] = a6, b6, c6, d6
    out[2, 0] = nz
    return out


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)  # as the one kernel before: _central inlined with these flags
def regression_moments_from_sums(n, shifts, values, errors, relative):
    """:func:`regression_moments`' result from its parts (:func:`regression_shifts`,
    :func:`regression_sums_values`, :func:`regression_sums_errors`,
    :func:`regression_sums_relative`)."""
    n_ape = int(relative[2, 0])
    mom = np.zeros((7, 5))
    for j in range(7):
        k = n_ape if j == 5 else n
        if k == 0:
            continue
        s = values[j] if j < 2 else (errors[j - 2] if j < 5 else relative[j - 5])
        mean, q2, q3, q4 = _central(k, shifts[j], s[0], s[1], s[2], s[3])
        mom[j, 0] = k
        mom[j, 1] = mean
        mom[j, 2] = q2
        mom[j, 3] = q3
        mom[j, 4] = q4
    return mom, shifts[0], values[2, 0], values[2, 1]


@nb.njit(cache=True, nogil=True, fastmath=_REASSOC)
def regression_moments(y: np.ndarray, yhat: np.ndarray):
    """All regression moments in passes over the data.

    Sums of powers of ``x - K`` are accumulated around shifts ``K`` taken from a strided
    sample of at most 1024 rows (so K is within a fraction of a standard deviation of the
    mean and the conversion to central moments does not cancel, even for offset or
    sorted data). Returns ``mom`` (7, 5): rows (n, mean, M2, M3, M4) of y, yhat,
    e = y - yhat, |e|, e**2, |e| / |y| over y != 0, and 2|e| / (|y| + |yhat|) (0/0 := 0);
    then the shift of y and the cross sums sum e**2 (y - shift), sum e**2 (y - shift)**2.
    The parts are kernels of their own, so that two threads can share a large batch.
    """
    shifts = regression_shifts(y, yhat)
    return regression_moments_from_sums(y.shape[0], shifts, regression_sums_values(y, yhat, shifts),
                                        regression_sums_errors(y, yhat, shifts),
                                        regression_sums_relative(y, yhat, shifts))


ABS_SHIFT = 45  # 52 - _abs_hist.MANT_BITS (7 mantissa bits: buckets 0.78 % wide)
_ABS_TINY = 2.0**-1022


@nb.njit(cache=True, nogil=True)
def abs_error_hist(y: np.ndarray, yhat: np.ndarray):
    """Sparse log-spaced histogram of ``|y - yhat|``: (sorted bucket ids, counts).

    Bucket = float64 bits of ``|e|`` >> ABS_SHIFT (0 below the smallest normal double); see
    :mod:`perfkit.metrics._abs_hist`. Large batches: one pass into a dense table of every
    possible bucket (2**18 counters, 2 MB); small ones: ids and their range, then counts
    over that range. Then the non-zero entries.
    """
    n = y.shape[0]
    lo = np.int64(0)
    if n > 65536:
        dense = np.zeros(1 << (63 - ABS_SHIFT), dtype=np.int64)
        for i in range(n):
            a = abs(y[i] - yhat[i])
            if a >= _ABS_TINY:
                dense[np.float64(a).view(np.int64) >> ABS_SHIFT] += 1
            else:
                dense[0] += 1
    else:  # small batches: bucket ids and their range first (no 2 MB table to clear)
        ids = np.empty(n, dtype=np.int64)
        lo = np.int64(1) << 62
        hi = np.int64(0)
        for i in range(n):
            a = abs(y[i] - yhat[i])
            b = np.int64(0)
            if a >= _ABS_TINY:
                b = np.float64(a).view(np.int64) >> ABS_SHIFT
            ids[i] = b
            lo = min(lo, b)
            hi = max(hi, b)
        if n == 0:
            lo = hi = 0
        dense = np.zeros(hi - lo + 1, dtype=np.int64)
        for i in range(n):
            dense[ids[i] - lo] += 1
    m = 0
    for j in range(dense.shape[0]):
        if dense[j] > 0:
            m += 1
    out_i = np.empty(m, dtype=np.int64)
    out_c = np.empty(m, dtype=np.int64)
    m = 0
    for j in range(dense.shape[0]):
        if dense[j] > 0:
            out_i[m] = j + lo
            out_c[m] = dense[j]
            m += 1
    return out_i, out_c


@nb.njit(cache=True, nogil=True)
def small_int_labels(a):
    """(min, max, counts) of an integer array in two passes (counts only when the range is small).

    Branch-free minimum and maximum (vectorised); the counts in four partial tables, so that
    runs of one label do not wait on each other.
    """
    n = a.shape[0]
    lo = a[0]
    hi = a[0]
    for i in range(1, n):
        v = a[i]
        lo = min(lo, v)
        hi = max(hi, v)
    if hi - lo >= 1_000_000 or hi - lo < 0:  # < 0: the range overflowed int64 (wrapped)
        return lo, hi, np.zeros(0, dtype=np.int64)
    m = hi - lo + 1
    if m > 4096:
        counts = np.zeros(m, dtype=np.int64)
        for i in range(n):
            counts[a[i] - lo] += 1
        return lo, hi, counts
    part = np.zeros((4, m), dtype=np.int64)
    for i in range(n):
        part[i & 3, a[i] - lo] += 1
    return lo, hi, part[0] + part[1] + part[2] + part[3]


_B64_TABLE = np.full(256, 255, dtype=np.uint8)
for _i, _ch in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):
    _B64_TABLE[_ch] = _i


@nb.njit(cache=True)
def isotonic_blocks(y: np.ndarray, w: np.ndarray):
    """Weighted isotonic (increasing) regression by pool-adjacent-violators.

    Returns ``(values, weights, block)``: the value and total weight of each pooled block
    and the block index of every input point (points in input order).
    """
    n = y.shape[0]
    val = np.empty(n)
    wt = np.empty(n)
    start = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        val[m] = y[i]
        wt[m] = w[i]
        start[m] = i
        m += 1
        while m > 1 and val[m - 2] > val[m - 1]:
            tw = wt[m - 2] + wt[m - 1]
            val[m - 2] = (val[m - 2] * wt[m - 2] + val[m - 1] * wt[m - 1]) / tw
            wt[m - 2] = tw
            m -= 1
    block = np.empty(n, dtype=np.int64)
    for b in range(m):
        end = start[b + 1] if b + 1 < m else n
        for i in range(start[b], end):
            block[i] = b
    return val[:m].copy(), wt[:m].copy(), block


@nb.njit(cache=True)
def nonzero_index(r: np.ndarray) -> np.ndarray:
    """Indices of the non-zero entries of a 1-D int64 array (sparse histogram rows)."""
    m = 0
    for i in range(r.shape[0]):
        if r[i] != 0:
            m += 1
    out = np.empty(m, dtype=np.int64)
    m = 0
    for i in range(r.shape[0]):
        if r[i] != 0:
            out[m] = i
            m += 1
    return out


@nb.njit(cache=True, nogil=True)
def aligned_counts(pi, pc, ni, nc):
    """Two sparse histogram rows on the union of their occupied buckets.

    Returns (buckets, pos counts, neg counts), ascending. Empty buckets change nothing in
    :func:`delong_from_histograms` or :func:`placement_tables`, so these compact arrays give
    the same results as the dense rows.
    """
    m = pi.shape[0] + ni.shape[0]
    ub = np.empty(m, dtype=np.int64)
    up = np.zeros(m, dtype=np.int64)
    un = np.zeros(m, dtype=np.int64)
    a = 0
    b = 0
    u = 0
    while a < pi.shape[0] or b < ni.shape[0]:
        if b >= ni.shape[0] or (a < pi.shape[0] and pi[a] < ni[b]):
            ub[u] = pi[a]
            up[u] = pc[a]
            a += 1
        elif a >= pi.shape[0] or ni[b] < pi[a]:
            ub[u] = ni[b]
            un[u] = nc[b]
            b += 1
        else:
            ub[u] = pi[a]
            up[u] = pc[a]
            un[u] = nc[b]
            a += 1
            b += 1
        u += 1
    return ub[:u], up[:u], un[:u]


@nb.njit(cache=True, nogil=True)
def sparse_influence(keys, y_idx, p_keys, p_counts, n_keys, n_counts, defined, bins):
    """Per row, the sum over the classes ``defined`` of its AUC influence (class ``j``: row
    ``i`` at bucket ``keys[i, j] - j * bins``, a positive when ``y_idx[i] == j``).

    The same values as :func:`placement_tables` read at each row's bucket, from the sparse
    histograms (flat sorted keys ``j * bins + bucket`` with their counts, every class's in
    one array): the work follows the rows and occupied buckets, not the bins. Each class
    adds its terms to every row in turn, so the sums are those of adding class by class;
    a class without positives or negatives adds nothing.
    """
    n = keys.shape[0]
    psi = np.zeros(n)
    for j in defined:
        ub, up, un = class_buckets(p_keys, p_counts, n_keys, n_counts, j, bins)
        v_pos, v_neg, ok = placement_values(up, un)
        if not ok:
            continue
        u = ub.shape[0]
        first = j * bins + ub[0]  # rows' keys are flat
        look = np.empty(ub[u - 1] - ub[0] + 1, dtype=np.int64)
        v = np.empty(2 * u)  # [2t]: a negative's term, [2t + 1]: a positive's (no branch per row)
        for t in range(u):
            look[ub[t] - ub[0]] = 2 * t
            v[2 * t] = v_neg[t]
            v[2 * t + 1] = v_pos[t]
        for i in range(n):
            psi[i] += v[look[keys[i, j] - first] + (y_idx[i] == j)]
    return psi


@nb.njit(cache=True, nogil=True)
def scatter_add(acc, keys, counts):
    """``acc[keys[i]] += counts[i]`` (sparse histograms merged into one accumulator)."""
    for i in range(keys.shape[0]):
        acc[keys[i]] += counts[i]


@nb.njit(cache=True, nogil=True)
def scatter_b64_rows(text, starts, lens, gsize, csize, first, base, bins, acc, table):
    """Add packed base64 sparse-histogram rows of any record layout into ``acc``.

    Row ``r`` is ``lens[r]`` base64 characters from ``text[starts[r]]`` (padding allowed)
    of little-endian records (gap of ``gsize[r]`` bytes, count of ``csize[r]`` bytes); its
    bins are ``first[r] + cumsum(gaps)``, added at ``base[r] + bin``. Returns False on a bad
    character, a length that is not whole records, or a bin outside ``0..bins-1``.
    """
    buf = np.empty(16, dtype=np.uint8)
    for r in range(starts.shape[0]):
        rec = gsize[r] + csize[r]
        b = first[r]
        off = base[r]
        if b < 0:
            return False
        pos = starts[r]
        end = pos + lens[r]
        if rec == 3 and gsize[r] == 2:  # the common layout: one record per 4 characters
            while pos < end:
                c0 = table[text[pos]]
                c1 = table[text[pos + 1]]
                c2 = table[text[pos + 2]]
                c3 = table[text[pos + 3]]
                if (c0 | c1 | c2 | c3) > 63:
                    return False
                v = (np.int64(c0) << 18) | (np.int64(c1) << 12) | (np.int64(c2) << 6) | np.int64(c3)
                b += (v >> 16) | (((v >> 8) & 0xFF) << 8)
                if b >= bins:
                    return False
                acc[off + b] += v & 0xFF
                pos += 4
            continue
        fill = 0  # decoded bytes waiting in buf
        while pos < end:
            c0 = table[text[pos]]
            c1 = table[text[pos + 1]]
            c2 = text[pos + 2]
            c3 = text[pos + 3]
            pos += 4
            nbytes = 3
            if c3 == 61:  # '='
                nbytes = 1 if c2 == 61 else 2
            d2 = 0 if c2 == 61 else table[c2]
            d3 = 0 if c3 == 61 else table[c3]
            if (c0 | c1 | d2 | d3) > 63:
                return False
            v = (np.int64(c0) << 18) | (np.int64(c1) << 12) | (np.int64(d2) << 6) | np.int64(d3)
            buf[fill] = (v >> 16) & 0xFF
            if nbytes > 1:
                buf[fill + 1] = (v >> 8) & 0xFF
            if nbytes > 2:
                buf[fill + 2] = v & 0xFF
            fill += nbytes
            while fill >= rec:
                gap = np.int64(0)
                for t in range(gsize[r]):
                    gap |= np.int64(buf[t]) << (8 * t)
                cnt = np.int64(0)
                for t in range(csize[r]):
                    cnt |= np.int64(buf[gsize[r] + t]) << (8 * t)
                b += gap
                if b >= bins:
                    return False
                acc[off + b] += cnt
                for t in range(rec, fill):
                    buf[t - rec] = buf[t]
                fill -= rec
        if fill:
            return False
    return True


# --------------------------------------------------------------------------- cell text
# The stored text of a sparse count array (``SparseCounts.to_dict``, layout 3): per occupied
# cell, in flat-index order, the number ``gap << q | code`` (gap = key - previous key - 1,
# the first cell's previous key being -1; ``q`` count bits chosen per array, 1..4): a code
# below 2**q - 1 is the count minus 1, the code 2**q - 1 says the count follows as a number
# of its own. A number is written in 5-bit groups, least significant first, one base64
# character per group (value 0..31, plus 32 when another group follows). With q = 1 a
# score-histogram cell of count 1 less than 16 bins after the previous one (most of them)
# takes one character. Numbers are below 2**60 (at most 12 groups).
CELL_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8)
CELL_LIMIT = 1 << 60
CELL_BITS = 4  # the most count bits


@nb.njit(cache=True, inline="always")
def _groups(x):
    g = 1
    x >>= 5
    while x > 0:
        g += 1
        x >>= 5
    return g


@nb.njit(cache=True, inline="always")
def _put(out, at, x, alphabet):
    while x >= 32:
        out[at] = alphabet[(x & 31) | 32]
        at += 1
        x >>= 5
    out[at] = alphabet[x]
    return at + 1


@nb.njit(cache=True, inline="always")
def _cell_length(g, c, q):
    mask = (1 << q) - 1
    if 1 <= c <= mask:
        return _groups((g << q) | (c - 1))
    return _groups((g << q) | mask) + _groups(c)


@nb.njit(cache=True, nogil=True)
def cells_encode(keys, counts, alphabet):
    """(cell text as ASCII codes, count bits q, ok) of sorted, distinct flat ``keys`` and
    their ``counts``; q is the one of 1..4 giving the shortest text of (at most) 512 cells
    spread over the array.

    ``ok`` is False (and the text empty) when the keys are not increasing or a number is
    negative or not below :data:`CELL_LIMIT`.
    """
    n = keys.shape[0]
    step = max(1, n // 512)
    sample = np.zeros(CELL_BITS + 1, dtype=np.int64)
    for i in range(0, n, step):
        g = keys[i] - (keys[i - 1] if i > 0 else -1) - 1
        for q in range(1, CELL_BITS + 1):
            sample[q] += _cell_length(g, counts[i], q)
    best = 1
    for q in range(2, CELL_BITS + 1):
        if sample[q] < sample[best]:
            best = q
    # one pass into a buffer of the longest possible text (two numbers of at most 12
    # characters per cell), checking each cell as it goes; most cells are one character
    mask = (1 << best) - 1
    out = np.empty(n * 24, dtype=np.uint8)
    at = 0
    prev = np.int64(-1)
    for i in range(n):
        g = keys[i] - prev - 1
        c = counts[i]
        if g < 0 or c < 0 or (g << CELL_BITS) >= CELL_LIMIT or c >= CELL_LIMIT:
            return np.empty(0, dtype=np.uint8), 1, False
        if 1 <= c <= mask:
            x = (g << best) | (c - 1)
            if x < 32:  # one character, written here: through _put's loop the pass is 10x slower
                out[at] = alphabet[x]
                at += 1
            else:
                at = _put(out, at, x, alphabet)
        else:
            at = _put(out, at, (g << best) | mask, alphabet)
            at = _put(out, at, c, alphabet)
        prev = keys[i]
    return out[:at].copy(), best, True


@nb.njit(cache=True, inline="always")
def _number(text, p, end, table):
    """(number, next position) of the number at ``p``; position -1 when malformed."""
    v = np.int64(0)
    shift = 0
    while True:
        if p >= end or shift > 55:
            return v, -1
        c = np.int64(table[text[p]])
        p += 1
        if c > 63:
            return v, -1
        v |= (c & 31) << shift
        if c < 32:
            return v, p
        shift += 5


@nb.njit(cache=True, nogil=True)
def cells_decode(text, nnz, size, q, table):
    """(keys, counts, ok) of the ``nnz`` cells of one cell text (count bits ``q``) of an
    array of ``size`` cells; ``ok`` False (and the arrays incomplete) when the text is
    malformed: a bad character, a number cut off or too long, another number of cells, a
    key >= ``size``."""
    keys = np.empty(nnz, dtype=np.int64)
    counts = np.empty(nnz, dtype=np.int64)
    mask = (np.int64(1) << q) - 1
    key = np.int64(-1)
    m = 0
    p = 0
    end = text.shape[0]
    while p < end:
        x, p = _number(text, p, end, table)
        if p < 0 or m >= nnz:
            return keys, counts, False
        key += (x >> q) + 1
        if key >= size:
            return keys, counts, False
        code = x & mask
        c = code + 1
        if code == mask:
            c, p = _number(text, p, end, table)
            if p < 0:
                return keys, counts, False
        keys[m] = key
        counts[m] = c
        m += 1
    return keys, counts, m == nnz


@nb.njit(cache=True, nogil=True)
def scatter_cells(text, starts, lens, nnz, qs, size, acc, table):
    """Add the cells of many cell texts into ``acc`` (length ``size``): text ``r`` is
    ``lens[r]`` characters from ``starts[r]`` holding ``nnz[r]`` cells with ``qs[r]`` count
    bits. Returns -1, or the first malformed text (see :func:`cells_decode`; texts before
    it are added).

    The common cell (one character below 32, its code a count) costs one table read and
    one add. (The number loops are written out: as calls of :func:`_number` this pass
    took twice as long.)
    """
    for r in range(starts.shape[0]):
        p = starts[r]
        end = p + lens[r]
        q = qs[r]
        mask = (np.int64(1) << q) - 1
        key = np.int64(-1)
        m = 0
        while p < end:
            x = np.int64(table[text[p]])
            p += 1
            if x >= 32:  # more groups follow (or a bad character: 255)
                if x > 63:
                    return r
                x &= 31
                shift = 5
                while True:
                    if p >= end or shift > 55:
                        return r
                    c = np.int64(table[text[p]])
                    p += 1
                    if c > 63:
                        return r
                    x |= (c & 31) << shift
                    if c < 32:
                        break
                    shift += 5
            key += (x >> q) + 1
            if key >= size:
                return r
            code = x & mask
            cnt = code + 1
            if code == mask:  # the count follows
                cnt = np.int64(0)
                shift = 0
                while True:
                    if p >= end or shift > 55:
                        return r
                    c = np.int64(table[text[p]])
                    p += 1
                    if c > 63:
                        return r
                    cnt |= (c & 31) << shift
                    if c < 32:
                        break
                    shift += 5
            acc[key] += cnt
            m += 1
        if m != nnz[r]:
            return r
    return -1


#: sparse_score_hists counts a histogram row densely when its buckets span at most this many
#: buckets per row (plus 1024)
_DENSE_SPAN = 16


@nb.njit(cache=True, nogil=True)
def _radix18(a, u, tmp, cnt):
    """Sort ``a[:u]`` (values below 2**18) in place: two 9-bit LSD counting passes."""
    src = a
    dst = tmp
    for shift in (0, 9):
        cnt[:] = 0
        for i in range(u):
            cnt[((src[i] >> shift) & 511) + 1] += 1
        for d in range(512):
            cnt[d + 1] += cnt[d]
        for i in range(u):
            d = (src[i] >> shift) & 511
            dst[cnt[d]] = src[i]
            cnt[d] += 1
        src, dst = dst, src
    # two passes: the sorted values are back in ``a``


@nb.njit(cache=True, nogil=True)
def sparse_score_hists(keys, y_idx, p_idx, hist_classes, labelled, bins):
    """Sparse ``pos``, ``neg`` and ``pred`` score histograms from every row's flat key.

    ``keys`` (n, h): row ``i``'s flat key ``j * bins + bucket`` of histogram row ``j`` (class
    ``hist_classes[j]``); a row counts in ``pos`` of its true class, ``neg`` of the others
    and ``pred`` of its predicted class (unlabelled: every row in ``neg``, ``pos`` empty).
    Returns (keys, counts) of each as sorted flat keys and their counts: what sorting the
    selected keys and counting their runs gives (``SparseCounts.from_keys``).

    Per histogram row, when its buckets span a range of at most :data:`_DENSE_SPAN` per row
    (scores of a real model), the three histograms are counted into dense counters over that
    range and read back in order; otherwise (buckets spread over the whole layout) the
    selected buckets are radix-sorted (``bins`` <= 2**18) and their runs counted.
    """
    n, h = keys.shape
    tmp = np.empty(n, dtype=np.int64)
    tmp2 = np.empty(n, dtype=np.int64)
    cnt = np.zeros(513, dtype=np.int64)
    pk = np.empty(n, dtype=np.int64)
    pc = np.empty(n, dtype=np.int64)
    nk = np.empty(n * h, dtype=np.int64)
    nc = np.empty(n * h, dtype=np.int64)
    dk = np.empty(n, dtype=np.int64)
    dc = np.empty(n, dtype=np.int64)
    mp = 0
    mn = 0
    md = 0
    lo = np.full(h, np.int64(h) * bins, dtype=np.int64)
    hi = np.full(h, np.int64(-1), dtype=np.int64)
    for i in range(n):
        for j in range(h):
            v = keys[i, j]
            lo[j] = min(lo[j], v)
            hi[j] = max(hi[j], v)
    widest = 0
    for j in range(h):
        span = hi[j] - lo[j] + 1
        if span <= _DENSE_SPAN * n + 1024:
            widest = max(widest, span)
    # (pos, neg, pred) counters of each bucket side by side, read back in order and cleared
    # for the next histogram row
    dense = np.zeros(3 * widest, dtype=np.int32)
    for j in range(h):
        c = hist_classes[j]
        base = j * bins
        first = lo[j]
        span = hi[j] - first + 1
        if n > 0 and span <= _DENSE_SPAN * n + 1024:
            for i in range(n):
                v = 3 * (keys[i, j] - first)
                neg = (not labelled) or y_idx[i] != c
                dense[v + neg] += 1
                dense[v + 2] += p_idx[i] == c
            for v in range(span):
                x = dense[3 * v]
                y = dense[3 * v + 1]
                z = dense[3 * v + 2]
                if x | y | z:
                    key = first + v
                    if x:
                        pk[mp] = key
                        pc[mp] = x
                        mp += 1
                    if y:
                        nk[mn] = key
                        nc[mn] = y
                        mn += 1
                    if z:
                        dk[md] = key
                        dc[md] = z
                        md += 1
                    dense[3 * v] = 0
                    dense[3 * v + 1] = 0
                    dense[3 * v + 2] = 0
            continue
        for kind in range(3):
            u = 0
            for i in range(n):
                if kind == 0:
                    take = labelled and y_idx[i] == c
                elif kind == 1:
                    take = (not labelled) or y_idx[i] != c
                else:
                    take = p_idx[i] == c
                if take:
                    tmp[u] = keys[i, j] - base
                    u += 1
            if u == 0:
                continue
            _radix18(tmp, u, tmp2, cnt)
            ok = pk if kind == 0 else (nk if kind == 1 else dk)
            oc = pc if kind == 0 else (nc if kind == 1 else dc)
            m = mp if kind == 0 else (mn if kind == 1 else md)
            prev = tmp[0]
            run = 0
            for i in range(u):
                v = tmp[i]
                if v != prev:
                    ok[m] = prev + base
                    oc[m] = run
                    m += 1
                    prev = v
                    run = 0
                run += 1
            ok[m] = prev + base
            oc[m] = run
            m += 1
            if kind == 0:
                mp = m
            elif kind == 1:
                mn = m
            else:
                md = m
    return (pk[:mp].copy(), pc[:mp].copy()), (nk[:mn].copy(), nc[:mn].copy()), (dk[:md].copy(), dc[:md].copy())
