"""Performance before the labels arrive: label-free estimates (CBPE) from states.

Confidence-based performance estimation (CBPE, as NannyML) calibrates the model's scores on
labelled reference data and reads the *expected* confusion counts of a new batch off its
calibrated probabilities. Here everything comes from mergeable states:

- the **baseline** (a labelled state) holds, per class, the score histograms of positives
  and negatives: a binned calibration curve, made monotone by weighted isotonic regression
  (pool-adjacent-violators over the occupied bins, weights = bin counts; one-vs-rest per
  class for multiclass), each end of the score range first pooled over ``3.5 sqrt(n)``
  baseline rows against isotonic regression's spikes there (:func:`pool_ends`). Bins of the batch that the baseline never saw are interpolated
  linearly in bin index between the neighbouring fitted bins (clipped at the ends, as
  scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``);
- the **batch** (labelled or not) holds its score histogram per class and the joint count of
  predicted class x score bin (``ClassificationState.hist_pred``), so the expected counts are
  exact whatever rule produced ``y_pred`` (threshold, business rule, ...).

With ``c_b`` rows in bin ``b``, ``k_b`` of them predicted as the class and calibrated
probability ``q_b``: expected TP = sum k_b q_b, FN = sum (c_b - k_b) q_b (and FP, TN by
difference); the expected ROC AUC comes from the expected positive / negative histograms
``c_b q_b`` and ``c_b (1 - q_b)``. Precision, recall, F1 (positive class and macro) and
accuracy are the labelled formulas applied to the expected counts. Balanced accuracy equals
``recall_macro`` (scikit-learn's definition), so it is not repeated.

**Intervals** (method ``cbpe``) add two variances, both by the delta method, and the
calibration's squared bias:

1. *batch sampling*: given calibrated probabilities, the realized counts are sums of
   independent Bernoulli variables (Poisson-binomial): Var TP = sum k_b q_b (1 - q_b),
   Var FN = sum (c_b - k_b) q_b (1 - q_b); AUC: sum_b c_b q_b (1 - q_b) g_b**2 with
   g_b the AUC's derivative for one row of bin ``b`` turning from negative to positive;
2. *calibration*: each isotonic block's value is a proportion of ``W`` baseline rows,
   Var = q'(1 - q') / W with q' = (positives + 0.5) / (W + 1) (never zero), blocks
   independent; its effect on the metric is the gradient summed over the batch bins that
   read that block (interpolated bins split between two blocks);
3. *calibration bias*: isotonic regression leans optimistic (it turns the baseline's noise
   into a monotone staircase, more discrimination than there is). :func:`calibrate` refits
   the calibration ``BIAS_REPLICATES`` times on baseline labels drawn from the fitted curve
   (seeded: the estimate stays a pure function); the metric's mean under the refits minus
   its value under the fitted curve estimates that bias, added as ``bias**2`` (the interval
   is then a root-mean-square-error interval). It depends on the baseline's size, not the
   batch's: without it, batches as large as the baseline were covered in only 90-92 % of
   the simulations (``benchmarks/estimation.py``).

The interval is ``value +- z * se`` clipped to the metric's range. Between classes of a
multiclass batch the covariances are ignored (the state keeps each class's bins separately),
accuracy's sampling variance is exact. The interval is for the *realized* value of the batch,
so realized outside it is evidence that the score-outcome relation changed
(:func:`concept_drift_check`).

Regression has no estimate (it needs a model of the loss on the features): every metric is
NaN with reason ``not_estimable_regression``. Extension point: an estimator for a task is a
function ``(state, baseline_state, level) -> dict[str, MetricValue]`` registered in
``ESTIMATORS[task]``; :func:`estimate` dispatches on the task.

How the tracker uses it (pure functions, nothing stored here)::

    est = estimate(pending_state, baseline_state)        # MetricReport, method "cbpe"
    ...                                                  # labels arrive, batch completed
    realized = evaluate(labelled_state)
    check = concept_drift_check(estimate(labelled_state, baseline_state), realized)
    check.suspected                                      # finding "concept_drift_suspected"

Windows: ``estimate(merge_states(pending_states), baseline)`` is the estimate of the window
(the prediction histograms merge by addition).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from perfkit._checks import check_level
from perfkit.exceptions import StateError, ValidationError
from perfkit.metrics import _kernels
from perfkit.metrics.evaluate import MetricReport
from perfkit.metrics.intervals import z_value
from perfkit.metrics.registry import METRICS, MetricValue
from perfkit.metrics.state import ClassificationState, RegressionState, State, state_from_dict

__all__ = [
    "BINARY_METRICS",
    "ESTIMATORS",
    "MULTICLASS_METRICS",
    "Calibration",
    "ConceptDriftCheck",
    "ConceptDriftFinding",
    "calibrate",
    "concept_drift_check",
    "end_rows_rule",
    "estimate",
    "pool_ends",
]

METHOD = "cbpe"
BINARY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "precision", "recall", "f1", "roc_auc")
MULTICLASS_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "mape", "smape")


# ------------------------------------------------------------------------ calibration
@dataclass(frozen=True, eq=False)
class ClassCalibration:
    """Isotonic calibration of one class's score over histogram bins.

    Attributes
    ----------
    support : ndarray of int64
        Bins where the baseline has rows (sorted).
    block : ndarray of int64
        Isotonic block of each support bin.
    values : ndarray
        Calibrated probability of each block.
    var : ndarray
        Variance of each block's value (binomial on the block's baseline rows).
    replicates : ndarray of float32, shape (R, support bins)
        Parametric-bootstrap refits of the calibration (see :func:`calibrate`): the
        calibrated value of every support bin under each refit. None: no such term.
    """

    support: np.ndarray
    block: np.ndarray
    values: np.ndarray
    var: np.ndarray
    replicates: np.ndarray | None = None

    def positions(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(left support position, right support position, weight of the right one) of
        sorted bin indices: bins the baseline never saw are interpolated linearly in bin
        index between their neighbours (clipped at the ends)."""
        s = self.support
        i = np.searchsorted(s, bins, side="right") - 1
        inside = (i >= 0) & (i < s.size - 1)
        il = np.clip(i, 0, s.size - 1)
        ir = np.where(inside, il + 1, il)
        exact = (i >= 0) & (s[il] == bins)
        gap = (s[ir] - s[il]).astype(np.float64)
        t = np.where(inside & ~exact, (bins - s[il]) / np.where(gap > 0, gap, 1.0), 0.0)
        return il, ir, t

    def lookup(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(q, left block, right block, weight of the right block) for sorted bin indices."""
        il, ir, t = self.positions(bins)
        lb, rb = self.block[il], self.block[ir]
        q = self.values[lb] * (1.0 - t) + self.values[rb] * t
        return q, lb, rb, t


@dataclass(frozen=True, eq=False)
class Calibration:
    """The calibration a baseline gives: one :class:`ClassCalibration` per histogram class.

    Build it once with :func:`calibrate` and pass it to :func:`estimate` in place of the
    baseline state to skip the (small) fit on every call.
    """

    task: str
    classes: tuple
    positive_index: int
    n: int
    per_class: tuple[ClassCalibration | None, ...]


def end_rows_rule(n_rows: float) -> int:
    """Default minimum rows of each end group of the calibration: ``ceil(3.5 sqrt(n))``."""
    return int(math.ceil(3.5 * math.sqrt(max(n_rows, 0.0))))


def pool_ends(y: np.ndarray, w: np.ndarray, min_rows: float) -> np.ndarray:
    """Replace ``y`` of the first and last points by their weighted mean until each end
    group holds at least ``min_rows`` weight (the input of the isotonic fit).

    Plain isotonic regression "spikes" at the ends: the last block is the largest mean of
    any suffix, so with few rows there the calibration is too extreme, and a batch shifted
    towards the extremes is estimated too optimistically. Pooling each end over
    ``3.5 sqrt(n)`` baseline rows removed that bias in the simulations of
    ``benchmarks/estimation.py``; ``min_rows = 0`` gives plain isotonic regression
    (NannyML's calibration).
    """
    out = np.array(y, dtype=np.float64)
    if min_rows <= 0 or y.size < 2:
        return out
    cw = np.cumsum(w)
    lo = int(np.searchsorted(cw, min_rows))
    hi = int(np.searchsorted(cw, cw[-1] - min_rows, side="right"))
    if 0 < lo < y.size:
        out[: lo + 1] = np.sum(y[: lo + 1] * w[: lo + 1]) / np.sum(w[: lo + 1])
    if 0 < hi < y.size - 1:
        out[hi:] = np.sum(y[hi:] * w[hi:]) / np.sum(w[hi:])
    return out


#: Parametric-bootstrap refits of the calibration behind the bias term of the intervals.
BIAS_REPLICATES = 32
_BIAS_SEED = 20_261_130


def _replicates(support_w: np.ndarray, q: np.ndarray, min_rows: float, seed: int, reps: int) -> np.ndarray:
    """Refit the calibration on baseline labels drawn from the fitted curve ``q`` (per support
    bin, ``support_w`` rows each): the refitted value of every support bin, ``reps`` rows."""
    rng = np.random.default_rng(seed)
    rows = support_w.astype(np.int64)
    w = support_w.astype(np.float64)
    out = np.empty((reps, q.size), dtype=np.float32)
    for r in range(reps):
        pos = rng.binomial(rows, np.clip(q, 0.0, 1.0)).astype(np.float64)
        vals, _, blk = _kernels.isotonic_blocks(pool_ends(pos / w, w, min_rows), w)
        out[r] = vals[blk]
    return out


def calibrate(baseline_state: ClassificationState | dict, *, min_end_rows: float | None = None,
              bias_replicates: int = BIAS_REPLICATES) -> Calibration:
    """Fit the per-class isotonic calibration of a labelled baseline state.

    Parameters
    ----------
    baseline_state : ClassificationState or dict
        Labelled state with scores.
    min_end_rows : float, optional
        Rows pooled at each end of the score range before the isotonic fit (see
        :func:`pool_ends`); default ``ceil(3.5 sqrt(rows))``; 0 for plain isotonic regression.
    bias_replicates : int, default 32
        Parametric-bootstrap refits kept for the calibration-bias term of the intervals
        (labels drawn from the fitted curve, seeded, so the result is deterministic); 0
        leaves the bias term out.

    Raises
    ------
    StateError
        The baseline is not a labelled classification state with scores.

    Examples
    --------
    >>> from perfkit.metrics import compute_state
    >>> base = compute_state([0, 0, 1, 1], [0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9])
    >>> cal = calibrate(base)
    >>> cal.per_class[0].values.tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    if isinstance(baseline_state, dict):
        baseline_state = state_from_dict(baseline_state)
    if min_end_rows is not None and (isinstance(min_end_rows, bool) or not isinstance(min_end_rows, numbers.Real)
                                     or not 0 <= min_end_rows < math.inf):
        raise ValidationError(f"min_end_rows must be a number >= 0, got {min_end_rows!r}", parameter="min_end_rows")
    if not isinstance(baseline_state, ClassificationState):
        raise StateError("the baseline of an estimate must be a classification state")
    if not baseline_state.labelled or not baseline_state.has_scores:
        raise StateError("the baseline of an estimate must be labelled and have scores (y_pred_proba)")
    out = []
    for j in range(len(baseline_state.hist_classes)):
        pos = baseline_state.hist_pos[j]
        tot = pos + baseline_state.hist_neg[j]
        support = np.flatnonzero(tot)
        if support.size == 0:
            out.append(None)
            continue
        w = tot[support].astype(np.float64)
        p = pos[support].astype(np.float64)
        m = end_rows_rule(w.sum()) if min_end_rows is None else min_end_rows
        values, weights, block = _kernels.isotonic_blocks(pool_ends(p / w, w, m), w)
        q = (values * weights + 0.5) / (weights + 1.0)
        reps = _replicates(w, values[block], m, _BIAS_SEED + j, int(bias_replicates)) if bias_replicates > 0 else None
        out.append(ClassCalibration(support, block, values, q * (1.0 - q) / weights, reps))
    return Calibration(
        baseline_state.task, baseline_state.classes, baseline_state.positive_index, baseline_state.n, tuple(out)
    )


# ------------------------------------------------------------------ expected quantities
@dataclass(frozen=True)
class _ClassParts:
    A: float  # expected rows of the class predicted as it (TP)
    B: float  # expected rows of the class predicted otherwise (FN)
    K: float  # rows predicted as the class
    var_a: float
    var_b: float
    grad_a: np.ndarray  # d A / d block value (dense over the class's blocks)
    grad_b: np.ndarray
    block_var: np.ndarray
    auc: float
    auc_var_sampling: float
    auc_grad: np.ndarray  # d AUC / d block value
    bins: np.ndarray  # occupied batch bins and, per bin: rows, rows predicted as the class,
    cb: np.ndarray  # calibrated probability and the AUC's derivative for one row turning
    kb: np.ndarray  # from negative to positive in that bin
    q: np.ndarray
    g: np.ndarray
    rep_a: np.ndarray  # A, B and AUC under each bootstrap refit of the calibration (R,)
    rep_b: np.ndarray
    rep_auc: np.ndarray


@nb.njit(cache=True)
def _replicate_kernel(rep, il, ir, t, cb, kb):  # pragma: no cover - compiled
    """A, B and the expected AUC of the batch under each refit (one pass over the bins each)."""
    R = rep.shape[0]
    A = np.zeros(R)
    B = np.zeros(R)
    auc = np.full(R, np.nan)
    for r in range(R):
        a = b = sp = sn = num = 0.0
        for j in range(il.size):
            q = rep[r, il[j]] * (1.0 - t[j]) + rep[r, ir[j]] * t[j]
            a += kb[j] * q
            b += (cb[j] - kb[j]) * q
            pos = cb[j] * q
            neg = cb[j] - pos
            num += pos * (sn + 0.5 * neg)
            sp += pos
            sn += neg
        A[r] = a
        B[r] = b
        if sp > 0.0 and sn > 0.0:
            auc[r] = num / (sp * sn)
    return A, B, auc


def _replicate_parts(cal: ClassCalibration, bins: np.ndarray, cb: np.ndarray, kb: np.ndarray):
    """(A, B, AUC) of the batch under each bootstrap refit of the calibration."""
    if cal.replicates is None or not len(cal.replicates):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    il, ir, t = cal.positions(bins)
    return _replicate_kernel(cal.replicates, il, ir, t, cb, kb)


def _class_parts(cal: ClassCalibration, c: np.ndarray, k: np.ndarray) -> _ClassParts:
    bins = np.flatnonzero(c)
    cb = c[bins].astype(np.float64)
    kb = k[bins].astype(np.float64)
    mb = cb - kb
    q, lb, rb, t = cal.lookup(bins)
    nblk = cal.values.size
    pq = q * (1.0 - q)

    def to_blocks(x: np.ndarray) -> np.ndarray:
        return np.bincount(lb, x * (1.0 - t), minlength=nblk) + np.bincount(rb, x * t, minlength=nblk)

    A = float(kb @ q) if bins.size < 64 else float(np.sum(kb * q))
    B = float(np.sum(mb * q))
    # expected AUC from the expected positive / negative histograms (bins in score order)
    P = cb * q
    N = cb - P
    SP, SN = float(P.sum()), float(N.sum())
    auc = auc_var = math.nan
    auc_grad = np.zeros(nblk)
    g = np.zeros(bins.size)
    if SP > 0 and SN > 0:
        below = np.cumsum(N) - N
        above = SP - np.cumsum(P)
        D = SP * SN
        auc = float(np.sum(P * (below + 0.5 * N)) / D)
        g = ((below + 0.5 * N) - (above + 0.5 * P) - auc * (SN - SP)) / D
        auc_var = float(np.sum(cb * pq * g * g))
        auc_grad = to_blocks(cb * g)
    return _ClassParts(
        A=A, B=B, K=float(kb.sum()), var_a=float(np.sum(kb * pq)), var_b=float(np.sum(mb * pq)),
        grad_a=to_blocks(kb), grad_b=to_blocks(mb), block_var=cal.var,
        auc=auc, auc_var_sampling=auc_var, auc_grad=auc_grad, bins=bins, cb=cb, kb=kb, q=q, g=g,
        **dict(zip(("rep_a", "rep_b", "rep_auc"), _replicate_parts(cal, bins, cb, kb), strict=True)),
    )


def _ratio(num: float, den: float, zero: float) -> float:
    return num / den if den > 0 else zero


def _count_metrics(task: str, n: float, zero: float) -> dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]]:
    """Metric functions of (A, B, K) vectors over the histogram classes."""
    if task == "binary":
        def parts(A, B, K):
            a, b, kk = A[0], B[0], K[0]
            tn = n - kk - b
            pos = (_ratio(a, kk, zero), _ratio(a, a + b, zero), _ratio(2 * a, kk + a + b, zero))
            neg = (_ratio(tn, n - kk, zero), _ratio(tn, n - a - b, zero), _ratio(2 * tn, 2 * n - kk - a - b, zero))
            return a, tn, pos, neg

        return {
            "accuracy": lambda A, B, K: (parts(A, B, K)[0] + parts(A, B, K)[1]) / n,
            "precision_macro": lambda A, B, K: 0.5 * (parts(A, B, K)[2][0] + parts(A, B, K)[3][0]),
            "recall_macro": lambda A, B, K: 0.5 * (parts(A, B, K)[2][1] + parts(A, B, K)[3][1]),
            "f1_macro": lambda A, B, K: 0.5 * (parts(A, B, K)[2][2] + parts(A, B, K)[3][2]),
            "precision": lambda A, B, K: parts(A, B, K)[2][0],
            "recall": lambda A, B, K: parts(A, B, K)[2][1],
            "f1": lambda A, B, K: parts(A, B, K)[2][2],
        }

    def per_class(A, B, K, i):
        out = []
        for j in range(A.size):
            a, b, kk = A[j], B[j], K[j]
            out.append((_ratio(a, kk, zero), _ratio(a, a + b, zero), _ratio(2 * a, kk + a + b, zero))[i])
        return float(np.mean(out))

    return {
        "accuracy": lambda A, B, K: float(np.sum(A)) / n,
        "precision_macro": lambda A, B, K: per_class(A, B, K, 0),
        "recall_macro": lambda A, B, K: per_class(A, B, K, 1),
        "f1_macro": lambda A, B, K: per_class(A, B, K, 2),
    }


def _gradient(f, A: np.ndarray, B: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient of ``f`` in A and B (the functions are smooth ratios)."""
    ga = np.zeros(A.size)
    gb = np.zeros(B.size)
    for vec, g in ((A, ga), (B, gb)):
        for j in range(vec.size):
            h = 1e-4 * max(1.0, abs(vec[j]))
            up, dn = vec.copy(), vec.copy()
            up[j] += h
            dn[j] -= h
            fu = f(up, B, K) if vec is A else f(A, up, K)
            fd = f(dn, B, K) if vec is A else f(A, dn, K)
            g[j] = (fu - fd) / (2 * h)
    return ga, gb


_CELLS: np.ndarray | None = None


def _cell_means(part: _ClassParts, x: np.ndarray) -> np.ndarray:
    """Per coarse score cell, the mean of ``x`` (per bin) over the batch's rows of the cell."""
    global _CELLS
    if _CELLS is None:
        _CELLS = _kernels.bin_cells()
    cell = _CELLS[part.bins]
    num = np.bincount(cell, part.cb * x, minlength=_kernels.JOINT_CELLS)
    den = np.bincount(cell, part.cb, minlength=_kernels.JOINT_CELLS)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _off_diagonal(joint: np.ndarray, parts: list[_ClassParts], x_per_class: list[np.ndarray],
                  totals: np.ndarray | None) -> np.ndarray:
    """M[d, c] ~ sum over rows predicted d (c != d) of x_c(row), from the coarse joint counts;
    with ``totals`` (x >= 0) rescaled so that each class's column sums to its exact total over
    the rows not predicted c."""
    k = joint.shape[0]
    M = np.zeros((k, k))
    for c in range(k):
        M[:, c] = joint[:, c, :] @ _cell_means(parts[c], x_per_class[c])
        M[c, c] = 0.0
        s = M[:, c].sum()
        if totals is not None and s > 0.0:
            M[:, c] *= totals[c] / s
    return M


def _cross_count_var(ga: np.ndarray, gb: np.ndarray, A: np.ndarray, K: np.ndarray, m_cd: np.ndarray) -> float:
    """Covariance part of a count metric's sampling variance (a row has one true class).

    Row i predicted d adds ``-sum_{c != c'} gamma_c gamma_c' q_ic q_ic'`` to the variance
    (gamma = dF/dA_d for c = d, dF/dB_c otherwise); the other classes' probabilities of the
    rows predicted d are replaced by their means over those rows (``m_cd[d, c] / K[d]``).
    """
    total = 0.0
    for d in range(K.size):
        if K[d] <= 0:
            continue
        t = gb * m_cd[d] / K[d]  # beta_c * mean q_c over the rows predicted d (0 for c = d)
        r = float(t.sum())
        total += 2.0 * ga[d] * A[d] * r + K[d] * (r * r - float(np.sum(t * t)))
    return -total


def _cross_auc_var(parts: list[_ClassParts], defined: list[int], joint: np.ndarray, K: np.ndarray) -> float:
    """Covariance part of the OvR macro AUC's sampling variance (before dividing by m**2).

    Per row the linearised macro AUC is sum_c g_c(bin) (Y_c - q_c); rows predicted d use their
    exact class-d term and the mean of a_c = g_c q_c over rows predicted d for the others.
    """
    k = len(parts)
    a = [p.g * p.q if j in defined else np.zeros_like(p.q) for j, p in enumerate(parts)]
    own = np.array([float(np.sum(p.kb * a[j])) for j, p in enumerate(parts)])
    M = _off_diagonal(joint, parts, a, None)
    total = 0.0
    for d in range(k):
        if K[d] <= 0:
            continue
        t = M[d] / K[d]
        r = float(t.sum())
        total += 2.0 * own[d] * r + K[d] * (r * r - float(np.sum(t * t)))
    return -total


def _bias2(replicated: np.ndarray, value: float) -> float:
    """Squared bias of the isotonic calibration, by parametric bootstrap.

    The refits (:func:`calibrate`) draw the baseline's labels from the fitted calibration
    and calibrate again (end pooling and isotonic fit included); the mean of the metric
    under the refits minus its value under the fitted curve is the error the isotonic fit
    itself adds on average. Isotonic regression turns noise into a monotone staircase: more
    discrimination than there is, so the estimates lean optimistic (ROC AUC most). The bias
    depends on the baseline's size, not the batch's, so for batches as large as the
    baseline it is a sizable part of the error and the per-block variance alone gives too
    narrow intervals; it enters the variance as ``bias**2`` (a root-mean-square error).
    """
    ok = replicated[np.isfinite(replicated)]
    if not ok.size or not math.isfinite(value):
        return 0.0
    return float(np.mean(ok) - value) ** 2


def _value(name: str, value: float, var: float, level: float, n: int, reason: str | None = None) -> MetricValue:
    spec = METRICS.get(name)
    lo_b, hi_b = (spec.lower, spec.upper) if spec is not None else (-math.inf, math.inf)
    se = math.sqrt(max(var, 0.0)) if math.isfinite(var) else math.nan
    z = z_value(level)
    lo = max(lo_b, value - z * se) if math.isfinite(se) else math.nan
    hi = min(hi_b, value + z * se) if math.isfinite(se) else math.nan
    return MetricValue(
        name, value, lo, hi, se, level, n, reason=reason, method=METHOD,
        higher_is_better=None if spec is None else spec.higher_is_better,
    )


def _nan_report(task: str, names: Iterable[str], reason: str, level: float, n: int) -> MetricReport:
    vals = {m: MetricValue(m, math.nan, level=level, n=n, reason=reason, method=METHOD,
                           higher_is_better=METRICS[m].higher_is_better if m in METRICS else None)
            for m in names}
    return MetricReport(task=task, level=level, n=n, values=vals)


def _classification_estimate(state: ClassificationState, cal: Calibration, level: float) -> dict[str, MetricValue]:
    names = BINARY_METRICS if state.task == "binary" else MULTICLASS_METRICS
    parts: list[_ClassParts] = []
    for j in range(len(state.hist_classes)):
        cc = cal.per_class[j]
        if cc is None:
            return {m: _value(m, math.nan, math.nan, level, state.n, "baseline_without_rows") for m in names}
        c = state.hist_neg[j] if state.hist_pos is None else state.hist_neg[j] + state.hist_pos[j]
        parts.append(_class_parts(cc, c, state.hist_pred[j]))
    n = float(state.n)
    A = np.array([p.A for p in parts])
    B = np.array([p.B for p in parts])
    K = np.array([p.K for p in parts])
    joint = state.pred_joint if state.task == "multiclass" else None
    m_cd = None
    if joint is not None:  # expected truth c among rows predicted d (c != d)
        m_cd = _off_diagonal(joint, parts, [p.q for p in parts], B)
    out: dict[str, MetricValue] = {}
    R = min(p.rep_a.size for p in parts)
    rep_A = np.array([p.rep_a[:R] for p in parts]).T  # (R, classes)
    rep_B = np.array([p.rep_b[:R] for p in parts]).T
    for name, f in _count_metrics(state.task, n, 0.0).items():
        value = float(f(A, B, K))
        ga, gb = _gradient(f, A, B, K)
        var = 0.0 if m_cd is None else _cross_count_var(ga, gb, A, K, m_cd)
        cal_var = 0.0
        for j, p in enumerate(parts):
            var += ga[j] ** 2 * p.var_a + gb[j] ** 2 * p.var_b
            g = ga[j] * p.grad_a + gb[j] * p.grad_b
            cal_var += float(np.sum(g * g * p.block_var))
        if R:
            cal_var += _bias2(np.array([f(rep_A[r], rep_B[r], K) for r in range(R)]), value)
        var += cal_var
        reason = None
        if name in ("precision", "precision_macro") and np.any(K == 0):
            reason = "precision_zero_division"
        out[name] = _value(name, value, var, level, state.n, reason)
    aucs = [p.auc for p in parts if math.isfinite(p.auc)]
    if not aucs:
        out["roc_auc"] = _value("roc_auc", math.nan, math.nan, level, state.n, "single_class_expected")
    else:
        m = len(aucs)
        var = sum(p.auc_var_sampling for p in parts if math.isfinite(p.auc))
        cal_var = sum(float(np.sum(p.auc_grad**2 * p.block_var)) for p in parts if math.isfinite(p.auc)) / (m * m)
        if joint is not None:
            defined = [j for j, p in enumerate(parts) if math.isfinite(p.auc)]
            var += _cross_auc_var(parts, defined, joint, K)
        var /= m * m
        if R:
            cal_var += _bias2(np.mean([p.rep_auc[:R] for p in parts if math.isfinite(p.auc)], axis=0),
                              sum(aucs) / m)
        var += cal_var
        out["roc_auc"] = _value("roc_auc", sum(aucs) / m, var, level, state.n)
    return {k: out[k] for k in names}


#: Estimators per task: ``(state, calibration, level) -> {name: MetricValue}``. Regression
#: has none yet; an estimator for it (a model of the loss on the features, kept in a state)
#: would be registered here.
ESTIMATORS: dict[str, Callable[..., dict[str, MetricValue]]] = {
    "binary": _classification_estimate,
    "multiclass": _classification_estimate,
}


def estimate(
    state: State | dict,
    baseline_state: ClassificationState | Calibration | dict | None,
    *,
    level: float = 0.95,
) -> MetricReport:
    """Estimated metrics of a batch without its labels (CBPE from states).

    Parameters
    ----------
    state : ClassificationState or dict
        The batch (or merged window): a prediction-only state, or a labelled one whose
        labels are ignored. Needs scores and the prediction histogram (states computed by
        this perfkit version; states stored earlier give NaN with reason
        ``no_prediction_histogram``).
    baseline_state : ClassificationState, Calibration or dict
        Labelled reference state with scores (or its :func:`calibrate` result), of the
        same task and classes.
    level : float, default 0.95
        Confidence level of the intervals.

    Returns
    -------
    MetricReport
        ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``, ``roc_auc`` and,
        for binary tasks, ``precision``, ``recall``, ``f1``; method ``"cbpe"``. Undefined
        values are NaN with a reason (``no_scores``, ``no_prediction_histogram``,
        ``no_labelled_baseline``, ``not_estimable_regression``).

    Raises
    ------
    ValidationError
        ``level`` outside (0, 1).
    StateError
        The baseline's task or classes differ from the batch's.

    Examples
    --------
    >>> import numpy as np
    >>> from perfkit.metrics import compute_state
    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(5000); y = (rng.random(5000) < p).astype(int)
    >>> base = compute_state(y, (p > 0.5).astype(int), p)
    >>> pending = compute_state(None, (p[:1000] > 0.5).astype(int), p[:1000])
    >>> r = estimate(pending, base)
    >>> r["accuracy"].method, 0.7 < r["accuracy"].value < 0.8
    ('cbpe', True)
    """
    if isinstance(state, dict):
        state = state_from_dict(state)
    if isinstance(baseline_state, dict):
        baseline_state = state_from_dict(baseline_state)
    check_level(level)
    if isinstance(state, RegressionState):
        return _nan_report("regression", REGRESSION_METRICS, "not_estimable_regression", level, state.n)
    if not isinstance(state, ClassificationState):
        raise StateError(f"estimate needs a state, got {type(state).__name__}")
    names = BINARY_METRICS if state.task == "binary" else MULTICLASS_METRICS
    if baseline_state is None:
        return _nan_report(state.task, names, "no_labelled_baseline", level, state.n)
    if isinstance(baseline_state, RegressionState) or baseline_state.task != state.task \
            or tuple(baseline_state.classes) != tuple(state.classes) \
            or baseline_state.positive_index != state.positive_index:
        raise StateError(
            f"the baseline ({baseline_state.task} {list(getattr(baseline_state, 'classes', []))}) does "
            f"not match the batch ({state.task} {list(state.classes)})"
        )
    if not state.has_scores:
        return _nan_report(state.task, names, "no_scores", level, state.n)
    if state.hist_pred is None:
        return _nan_report(state.task, names, "no_prediction_histogram", level, state.n)
    if isinstance(baseline_state, ClassificationState):
        if not baseline_state.labelled:
            return _nan_report(state.task, names, "no_labelled_baseline", level, state.n)
        if not baseline_state.has_scores:
            return _nan_report(state.task, names, "baseline_without_scores", level, state.n)
        if baseline_state.hist_neg.shape != state.hist_neg.shape:
            raise StateError("the baseline's score histograms have another layout than the batch's")
        cal = calibrate(baseline_state)
    else:
        cal = baseline_state
    values = ESTIMATORS[state.task](state, cal, level)
    return MetricReport(task=state.task, level=level, n=state.n, values=values)


# ------------------------------------------------------------------ concept drift check
@dataclass(frozen=True)
class ConceptDriftFinding:
    """Realized versus estimated value of one metric.

    ``z = (realized - estimated) / se`` with the estimate's standard error (which already
    holds the batch's sampling variance and the calibration's); ``suspected`` when the
    two-sided p-value is below ``alpha / (metrics checked)`` (Bonferroni).
    """

    metric: str
    estimated: float
    realized: float
    se: float
    z: float
    p_value: float
    threshold: float
    suspected: bool

    def to_dict(self) -> dict[str, Any]:
        def f(x):
            return None if not math.isfinite(x) else float(x)

        return {"metric": self.metric, "estimated": f(self.estimated), "realized": f(self.realized),
                "se": f(self.se), "z": f(self.z), "p_value": f(self.p_value),
                "threshold": self.threshold, "suspected": self.suspected}


@dataclass(frozen=True)
class ConceptDriftCheck:
    """Result of :func:`concept_drift_check`; ``kind`` names the finding."""

    findings: tuple[ConceptDriftFinding, ...]
    alpha: float
    kind: str = "concept_drift_suspected"

    @property
    def suspected(self) -> bool:
        return any(f.suspected for f in self.findings)

    @property
    def metrics(self) -> list[str]:
        """Metrics whose realized value is outside what the estimate allows."""
        return [f.metric for f in self.findings if f.suspected]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "suspected": self.suspected, "alpha": self.alpha,
                "metrics": self.metrics, "findings": {f.metric: f.to_dict() for f in self.findings}}


def concept_drift_check(
    estimated: Mapping[str, MetricValue],
    realized: Mapping[str, MetricValue],
    *,
    metrics: Iterable[str] = ("accuracy", "roc_auc", "f1_macro"),
    alpha: float = 0.002,
) -> ConceptDriftCheck:
    """Is the realized performance outside what the label-free estimate allows?

    CBPE assumes the relation between score and outcome is the baseline's. When labels
    complete a batch, a realized value far from the estimate (beyond its sampling and
    calibration error) says that assumption broke: finding ``concept_drift_suspected``.

    Parameters
    ----------
    estimated : MetricReport
        :func:`estimate` of the batch (or window) without its labels.
    realized : MetricReport
        :func:`perfkit.metrics.evaluate` of the same batch with its labels.
    metrics : iterable of str
        Metrics compared (those defined in both reports are used).
    alpha : float, default 0.002
        Family-wise false-alarm rate per check (Bonferroni over the metrics); small
        because the check runs on every completed batch.

    Examples
    --------
    >>> from perfkit.metrics import MetricValue
    >>> est = {"accuracy": MetricValue("accuracy", 0.90, se=0.01)}
    >>> check = concept_drift_check(est, {"accuracy": MetricValue("accuracy", 0.84)})
    >>> check.suspected, check.metrics
    (True, ['accuracy'])
    >>> concept_drift_check(est, {"accuracy": MetricValue("accuracy", 0.89)}).suspected
    False
    """
    if not (0.0 < alpha < 1.0):
        raise ValidationError(f"alpha must be in (0, 1), got {alpha!r}", parameter="alpha")
    from scipy.stats import norm

    usable = []
    for m in metrics:
        e, r = estimated.get(m), realized.get(m)
        if e is None or r is None:
            continue
        if math.isfinite(e.value) and math.isfinite(r.value) and math.isfinite(e.se) and e.se > 0:
            usable.append((m, e, r))
    thr = alpha / max(len(usable), 1)
    out = []
    for m, e, r in usable:
        z = (r.value - e.value) / e.se
        p = float(2.0 * norm.sf(abs(z)))
        out.append(ConceptDriftFinding(m, e.value, r.value, e.se, z, p, thr, p < thr))
    return ConceptDriftCheck(tuple(out), alpha)
