"""Covariances between the per-class AUCs of a multiclass state, from mergeable counts.

The one-vs-rest macro AUC averages ``k`` per-class AUCs computed on the same rows: every
row is a positive of its class and a negative of the others, so the per-class AUCs are
correlated and ``sum(var_c) / k**2`` misstates the macro AUC's variance. DeLong's
linearisation writes each AUC as a sum over rows of a per-row influence, a function of the
row's score for that class and of whether the row belongs to it:
``phi_c(row) = (V10_c(p) - A_c) / P_c`` for a positive of ``c`` and
``(V01_c(p) - A_c) / N_c`` for a negative, with placement values read from the class's
score histograms. The covariance of ``AUC_c`` and ``AUC_d`` is ``sum_rows phi_c phi_d``.

That sum needs the joint law of the two scores of a row, which the marginal histograms do
not keep. A state therefore keeps, per unordered pair of classes ``(c, d)``, the counts of
rows by (group: class ``c`` / class ``d`` / another class, coarse cell of ``p_c``, coarse
cell of ``p_d``): :func:`pair_counts`. Counts merge by addition, so a window's covariance
follows from its merged state exactly as a single batch's does. Within a cell the influence
is replaced by its mean over the cell's rows, read from the fine histograms (the cells are
unions of histogram buckets: :func:`bucket_cells`).

Cells: on ``q = min(p, 1 - p)`` two per octave (edges ``2**e`` and ``1.5 * 2**e``) from
``2**-10`` to ``1/2``, one below ``2**-10``, mirrored above ``1/2``: ``CELLS = 38``.
States of more than :data:`MAX_CLASSES` classes keep no pair counts (their size grows as
``k**2``); their macro AUC falls back to the single-batch variance ratio.
"""

from __future__ import annotations

import math
import os

import numba as nb
import numpy as np

from perfkit.metrics import _kernels, _threads

__all__ = [
    "CELLS",
    "MAX_CLASSES",
    "align_pair_counts",
    "bucket_cells",
    "macro_auc_variance",
    "pair_counts",
    "pair_index",
]

_LOW_OCTAVE = -10  # cells of q from 2**-10 up to 1/2, two per octave
HALF_CELLS = 1 + 2 * (-1 - _LOW_OCTAVE)
CELLS = 2 * HALF_CELLS
MAX_CLASSES = 10


def bucket_cells() -> np.ndarray:
    """The cell of every histogram bucket (length ``HIST_BINS``); cells are unions of buckets.

    Examples
    --------
    >>> c = bucket_cells()
    >>> int(c.min()), int(c.max()), bool(np.all(np.diff(c) >= 0))
    (0, 37, True)
    """
    lo = _kernels.bin_lower_edges()  # q lower edges of one half (powers of 2 are bucket edges)
    half = np.zeros(lo.size, dtype=np.int64)
    inside = lo >= 2.0**_LOW_OCTAVE
    m, e = np.frexp(lo[inside])  # lo = m 2**e, m in [0.5, 1)
    half[inside] = 1 + 2 * (e - 1 - _LOW_OCTAVE) + (m >= 0.75)
    return np.concatenate([half, CELLS - 1 - half[::-1]])


_CELL_OF_BUCKET = bucket_cells()
_CELL_OF_BUCKET_8 = _CELL_OF_BUCKET.astype(np.uint8)  # the kernel's lookup table: 8x less cache
_PARALLEL_ROWS = 200_000  # rows from which pair counts use two threads
_PAIRS = _threads.LazyPool(1, "perfkit-pairs")  # its own: pair counts may run on the shared pool


def pair_index(c: int, d: int, k: int) -> int:
    """Row of the unordered pair ``c < d`` among ``k * (k - 1) / 2`` pairs.

    >>> [pair_index(c, d, 4) for c in range(4) for d in range(c + 1, 4)]
    [0, 1, 2, 3, 4, 5]
    """
    return c * k - c * (c + 1) // 2 + (d - c - 1)


@nb.njit(cache=True, nogil=True)
def _pair_counts(proba, y_idx, table, out):  # pragma: no cover - compiled
    n, k = proba.shape
    m = out.shape[0]
    flat = out.reshape(-1)
    first, second, offset = _kernels.pair_offsets(k, CELLS)
    row_cell = np.empty(k, dtype=np.int64)
    col_cell = np.empty(k, dtype=np.int64)
    for i in range(n):
        for c in range(k):
            cell = np.int64(table[_kernels._bin(proba[i, c])])
            row_cell[c] = cell * CELLS
            col_cell[c] = cell
        yi = y_idx[i]
        for r in range(m):
            flat[offset[yi, r] + row_cell[first[r]] + col_cell[second[r]]] += 1
    return out


def pair_counts(proba: np.ndarray, y_idx: np.ndarray) -> np.ndarray | None:
    """Counts (pairs, 3, CELLS, CELLS) of rows by pair of classes, group and the two cells.

    None for binary data and for more than :data:`MAX_CLASSES` classes.

    Examples
    --------
    >>> p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    >>> j = pair_counts(p, np.array([0, 1, 2]))
    >>> j.shape, int(j.sum())
    ((3, 3, 38, 38), 9)
    """
    k = proba.shape[1]
    if k <= 2 or k > MAX_CLASSES:
        return None
    shape = (k * (k - 1) // 2, 3, CELLS, CELLS)
    proba = np.ascontiguousarray(proba, dtype=np.float64)
    y_idx = np.asarray(y_idx, dtype=np.int64)
    n = proba.shape[0]
    if n >= _PARALLEL_ROWS and (os.cpu_count() or 1) > 1:
        # large batches: the second half counted on a worker thread (the kernel releases
        # the GIL); integer counts, so the sum is exactly the one-pass result
        half = n // 2
        job = _PAIRS.get().submit(_pair_counts, proba[half:], y_idx[half:], _CELL_OF_BUCKET_8, np.zeros(shape, dtype=np.int64))
        out = _pair_counts(proba[:half], y_idx[:half], _CELL_OF_BUCKET_8, np.zeros(shape, dtype=np.int64))
        out += job.result()
        return out
    return _pair_counts(proba, y_idx, _CELL_OF_BUCKET_8, np.zeros(shape, dtype=np.int64))


def align_pair_counts(counts: np.ndarray | None, pos: np.ndarray, k: int) -> np.ndarray | None:
    """Re-encode pair counts of classes ``0..len(pos)-1`` as classes ``pos`` among ``k``.

    Pairs of a class absent from the old state get no rows (their rows are unknown: the
    new classes had no rows there, so every row of the old state is in group "another
    class" for them; those pairs are left empty and the state's covariance for them is 0).
    """
    if counts is None or k > MAX_CLASSES:
        return None
    old = len(pos)
    out = np.zeros((k * (k - 1) // 2, 3, CELLS, CELLS), dtype=counts.dtype)
    for c in range(old):
        for d in range(c + 1, old):
            a, b = int(pos[c]), int(pos[d])
            block = counts[pair_index(c, d, old)]
            if a < b:
                out[pair_index(a, b, k)] = block
            else:  # the pair's order flips: swap the groups and the cell axes
                out[pair_index(b, a, k)] = block[[1, 0, 2]].transpose(0, 2, 1)
    return out


@nb.njit(cache=True, nogil=True)
def _cell_sums(pi, pc, ni, nc, cell_of_bucket):  # pragma: no cover - compiled
    """Per cell, the sums of count and of count x influence of the positives and of the
    negatives of one class, from its occupied buckets only (:func:`_kernels.placement_values`),
    summed per cell in bucket order as ``np.bincount`` sums the dense rows. Returns
    (num_pos, den_pos, num_neg, den_neg)."""
    ub, up, un = _kernels.aligned_counts(pi, pc, ni, nc)
    v_pos, v_neg, _ = _kernels.placement_values(up, un)
    num_p = np.zeros(CELLS)
    den_p = np.zeros(CELLS)
    num_n = np.zeros(CELLS)
    den_n = np.zeros(CELLS)
    for t in range(ub.shape[0]):
        cell = cell_of_bucket[ub[t]]
        wp = float(up[t])
        wn = float(un[t])
        num_p[cell] += wp * v_pos[t]
        den_p[cell] += wp
        num_n[cell] += wn * v_neg[t]
        den_n[cell] += wn
    return num_p, den_p, num_n, den_n


def _row(h, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(occupied buckets, counts) of row ``c`` of a sparse or dense histogram."""
    if hasattr(h, "row"):
        return h.row(c)
    r = np.asarray(h[c])
    nz = np.flatnonzero(r)
    return nz.astype(np.int64), r[nz].astype(np.int64)


def _class_cell_means(hist_pos, hist_neg, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean influence of a positive and of a negative row of class ``c`` over every cell."""
    num_p, den_p, num_n, den_n = _cell_sums(*_row(hist_pos, c), *_row(hist_neg, c), _CELL_OF_BUCKET)
    return (np.divide(num_p, den_p, out=np.zeros(CELLS), where=den_p > 0),
            np.divide(num_n, den_n, out=np.zeros(CELLS), where=den_n > 0))


def macro_auc_variance(
    hist_pos: np.ndarray, hist_neg: np.ndarray, variances: list[float], counts: np.ndarray
) -> float:
    """Variance of the OvR macro AUC: per-class DeLong variances plus the pair covariances.

    ``variances`` are the per-class DeLong variances (NaN: class undefined, left out of the
    mean as the macro AUC leaves it out); ``counts`` the state's :func:`pair_counts`
    (any array of its size: a state keeps it flattened and sparse).
    """
    k = hist_pos.shape[0]
    counts = np.asarray(counts).reshape(-1, 3, CELLS, CELLS)
    defined = [c for c in range(k) if math.isfinite(variances[c])]
    m = len(defined)
    if m == 0:
        return math.nan
    total = sum(variances[c] for c in defined)
    f_pos, f_neg = {}, {}
    for c in defined:
        f_pos[c], f_neg[c] = _class_cell_means(hist_pos, hist_neg, c)
    for i, c in enumerate(defined):
        for d in defined[i + 1:]:
            j = counts[pair_index(c, d, k)].astype(np.float64)
            cov = (f_pos[c] @ j[0] @ f_neg[d] + f_neg[c] @ j[1] @ f_pos[d] + f_neg[c] @ j[2] @ f_neg[d])
            total += 2.0 * float(cov)
    return max(total, 0.0) / (m * m)
