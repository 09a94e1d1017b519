"""The one decision function: is a metric credibly worse than its baseline?

Every place that answers "would this alert?" calls :func:`decide`: the tracker for one
tracking call (:func:`perfkit.analysis.assess`), :func:`perfkit.analysis.replay` for a whole
history, the summary, the weekly report and the threshold explorer. The offline HTML slider
evaluates the same formulas in JavaScript from the per-point numbers listed in
:data:`ROW_COLUMNS` (see ``perfkit/report/charts.py``), so every view gives the same answer.

A row is one (tracking call, segment, metric, scope) comparison. ``scope`` is ``"batch"``
(the batch on its own), ``"window"`` (the merge of the last ``window_batches`` batches of
the same segment, only for metrics whose window value follows exactly from per-batch
numbers) or ``"floor"`` (the performance score against ``low_performance_threshold``).

The rules, each written once here:

1. **Degradation** ``d``: the change in the bad direction (the metric table's
   ``higher_is_better``), relative to ``|baseline|`` in ``relative`` threshold mode.
2. **Practical**: ``d >= threshold``. Window rows are practical only when the batch's own
   point estimate is practical too (a healthy batch after a bad one raises nothing).
3. **Test** (one-sided, H1: worse): ``proportion`` metrics use the Miettinen-Nurminen score
   test of two independent proportions with the Gart-Nam skewness correction
   (:func:`score_test_diff` with ``skew=True``; without it, statsmodels'
   ``test_proportions_2indep(method="score")``); the others a z test from the standard errors
   of the batch and the baseline; ``bootstrap_z`` metrics (macro P/R/F1) only from
   :data:`MIN_ROWS_BOOTSTRAP_Z` batch rows (reason ``too_few_rows``). With ``gating="minimum_effect"`` the null is "degradation
   <= minimum_effect_fraction x threshold" (default half the threshold), with
   ``"significance"`` it is "no degradation".
4. **One family per tracking call**: every comparison of a call with a p-value (every
   segment, batch and window scope, practical or not) is in it. With weights ``w``
   (:func:`family_weights`: in a segmented call the whole model's rows share half of the
   weight, the segments the other half) the call alerts only when its *block Simes* test
   rejects (Simes inside each segment x scope block of metrics, weighted Bonferroni across
   blocks: the call's family-wise error, valid because the one-sided tests of one batch's
   metrics are positively dependent), and which rows then alert is the weighted
   ``fdr_method`` adjustment's answer; the reported adjusted p is the larger of the two
   (:func:`_family_adjust`).
5. **Degraded** = practical and (adjusted p < alpha, unless ``gating="none"``). A window row
   is degraded only when its batch row is not (one alert per metric and call).
6. **Severity** from the bands; the **retraining** trigger marks the call's worst degraded
   row whose degradation is credibly beyond ``auto_retraining_threshold`` (the same test with
   that null, its p-values adjusted over the call's family as in rule 4; with
   ``significance`` gating: credibly worse at all).
7. **Low performance** (``floor`` rows): the performance score is credibly below the floor
   (one-sided z with a conservative standard error; Holm at ``alpha`` across the floor rows
   of a call: the whole batch and each segment), not part of the degradation family and
   not a degradation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from perfkit.config import DetectionSettings
from perfkit.exceptions import ValidationError
from perfkit.metrics import get_metric

__all__ = [
    "DECISION_COLUMNS",
    "MIN_ROWS_BOOTSTRAP_Z",
    "ROW_COLUMNS",
    "adjust_pvalues",
    "family_weights",
    "decide",
    "score_test_diff",
    "severity_for",
    "threshold_value",
]

#: Input columns of :func:`decide` (``family``, ``metric`` and ``value`` are required).
ROW_COLUMNS = (
    "family", "segment", "metric", "scope", "value", "se", "n", "successes", "trials",
    "baseline", "baseline_se", "baseline_successes", "baseline_trials",
)
#: Fewest batch rows for which a ``bootstrap_z`` metric (macro precision / recall / F1) is
#: tested: with fewer, its z test's lower tail is far too light (measured with 5 classes x 10
#: rows: stable batches reach p < 1e-6), so only accuracy and AUC speak for such a batch.
MIN_ROWS_BOOTSTRAP_Z = 100
#: Columns :func:`decide` adds.
DECISION_COLUMNS = (
    "higher_is_better", "threshold", "relative_change", "degradation", "practical", "test",
    "statistic", "p_value", "adjusted_p_value", "significant", "degraded", "severity",
    "min_detectable_degradation", "retraining", "reason",
)


def _norm_sf(z: np.ndarray) -> np.ndarray:
    """Upper tail of the standard normal: ``0.5 * erfc(z / sqrt(2))`` (the JS port uses the same)."""
    return 0.5 * special.erfc(np.asarray(z, dtype=float) / math.sqrt(2.0))


def _norm_isf(p: float) -> float:
    return float(-special.ndtri(p))


def severity_for(degradation: float, threshold: float, bands: Mapping[str, float]) -> str | None:
    """Severity of a degradation: minor (threshold..moderate), moderate, critical.

    Examples
    --------
    >>> bands = {"moderate": 0.10, "critical": 0.20}
    >>> [severity_for(d, 0.05, bands) for d in (0.03, 0.07, 0.15, 0.25)]
    [None, 'minor', 'moderate', 'critical']
    """
    out = _severity(np.array([degradation], float), np.array([threshold], float), bands)[0]
    return None if out is None else str(out)


def _severity(d: np.ndarray, threshold: np.ndarray, bands: Mapping[str, float]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        sev = np.where(d >= bands["critical"], "critical",
                       np.where(d >= bands["moderate"], "moderate", "minor")).astype(object)
        sev[~(np.isfinite(d) & (d >= threshold))] = None
    return sev


def threshold_value(metric: str, baseline: float | None, settings: DetectionSettings) -> float | None:
    """The metric value at which a degradation reaches its threshold (the chart's threshold line).

    Examples
    --------
    >>> s = DetectionSettings(thresholds={"accuracy": 0.05, "log_loss": 0.10})
    >>> threshold_value("accuracy", 0.9, s), round(threshold_value("log_loss", 0.4, s), 6)
    (0.855, 0.44)
    """
    t = settings.thresholds.get(metric)
    if t is None or baseline is None or not math.isfinite(baseline):
        return None
    hib = get_metric(metric).higher_is_better
    if hib is None:
        return None
    step = t if settings.threshold_mode == "absolute" else t * abs(baseline)
    return baseline - step if hib else baseline + step


def score_test_diff(count1, nobs1, count0, nobs0, value, *, skew: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Score statistic of H0: ``p1 - p0 = value`` (Miettinen-Nurminen, with their n/(n-1)).

    Vectorized and written in plain arithmetic so the offline report can evaluate the same
    formula in JavaScript. Equal to ``statsmodels.stats.proportion.score_test_proportions_2indep``
    (``compare="diff"``, ``correction=True``); returns ``(statistic, variance)`` where
    ``statistic = (p1 - p0 - value) / sqrt(variance)``. Degenerate cells (all successes or
    none on both sides) give NaN; :func:`decide` then falls back to a Wald statistic with a
    variance floor.

    ``skew=True`` applies the Gart-Nam skewness correction (the "SCAS" statistic of Laud
    2017, equal to R ``ratesci::scoreci(skew=TRUE)``): ``z`` solves
    ``z = S - g (z^2 - 1)`` with ``g = mu3 / (6 V^1.5)``, ``mu3`` the third central moment of
    ``p1 - p0`` at the restricted estimates. At 85 % accuracy and 50 rows the uncorrected
    lower tail is 2-3x too light (6.2 % of stable batches below p = 0.05, 0.55 % below 0.002);
    corrected it is close to nominal (``benchmarks/detection.py``).

    Examples
    --------
    >>> z, v = score_test_diff(80, 100, 90, 100, -0.05)
    >>> round(float(z), 4)
    -0.9974
    >>> round(float(score_test_diff(36, 50, 17000, 20000, 0.0, skew=True)[0]), 3)
    -2.359
    """
    c1, n1, c0, n0, diff = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                                 (count1, nobs1, count0, nobs0, value)))
    nobs = n1 + n0
    count = c1 + c0
    p1 = c1 / n1
    p0 = c0 / n0
    with np.errstate(all="ignore"):
        tmp3 = nobs
        tmp2 = (n1 + 2 * n0) * diff - nobs - count
        tmp1 = (c0 * diff - nobs - 2 * c0) * diff + count
        tmp0 = c0 * diff * (1 - diff)
        q = (tmp2 / (3 * tmp3)) ** 3 - tmp1 * tmp2 / (6 * tmp3**2) + tmp0 / (2 * tmp3)
        p = np.sign(q) * np.sqrt((tmp2 / (3 * tmp3)) ** 2 - tmp1 / (3 * tmp3))
        a = (np.pi + np.arccos(np.clip(q / p**3, -1.0, 1.0))) / 3
        prop0 = 2 * p * np.cos(a) - tmp2 / (3 * tmp3)
        pooled = count / nobs
        prop0 = np.where(diff == 0, pooled, prop0)
        prop1 = np.where(diff == 0, pooled, prop0 + diff)
        var = (prop1 * (1 - prop1) / n1 + prop0 * (1 - prop0) / n0) * nobs / (nobs - 1)
        stat = (p1 - p0 - diff) / np.sqrt(var)
        if skew:
            mu3 = prop1 * (1 - prop1) * (1 - 2 * prop1) / n1**2 - prop0 * (1 - prop0) * (1 - 2 * prop0) / n0**2
            g = mu3 / (6 * var**1.5)
            root = (-1 + np.sqrt(np.maximum(1 + 4 * g * (stat + g), 0.0))) / (2 * g)
            stat = np.where(g != 0, root, stat)
    stat = np.where(np.isfinite(stat) & (var > 0), stat, np.nan)
    return stat, var


def adjust_pvalues(P: np.ndarray, method: str) -> np.ndarray:
    """Adjust each row of a (families x tests) p-value matrix as one family (NaN = not tested).

    Vectorized equivalents of ``statsmodels.stats.multitest.multipletests`` for
    ``fdr_bh``, ``fdr_by``, ``holm`` and ``bonferroni`` (checked against it in the tests).

    Examples
    --------
    >>> adjust_pvalues(np.array([[0.01, 0.04, 0.03]]), "fdr_bh").round(3).tolist()
    [[0.03, 0.04, 0.04]]
    """
    P = np.atleast_2d(np.asarray(P, dtype=float))
    if method == "none":
        return P.copy()
    finite = np.isfinite(P)
    m = finite.sum(axis=1, keepdims=True).astype(float)
    key = np.where(finite, P, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    ps = np.take_along_axis(key, order, axis=1)
    j = np.arange(1, P.shape[1] + 1, dtype=float)[None, :]
    with np.errstate(invalid="ignore"):
        if method in ("fdr_bh", "fdr_by"):
            adj = ps * m / j
            if method == "fdr_by":
                harmonic = np.concatenate([[1.0], np.cumsum(1.0 / np.arange(1, P.shape[1] + 1))])
                adj = adj * harmonic[m[:, 0].astype(int)][:, None]
            adj = np.minimum.accumulate(adj[:, ::-1], axis=1)[:, ::-1]
        elif method == "holm":
            adj = np.maximum.accumulate(np.where(np.isfinite(ps), (m - j + 1) * ps, 0.0), axis=1)
            adj = np.where(np.isfinite(ps), adj, np.inf)
        elif method == "bonferroni":
            adj = ps * m
        else:
            raise ValidationError(f"unknown fdr_method {method!r}", parameter="fdr_method")
    adj = np.minimum(adj, 1.0)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=1)
    out[~finite] = np.nan
    return out


def _groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, group row, position in group) of integer group codes, for a padded matrix."""
    order = np.argsort(codes, kind="stable")
    c = codes[order]
    starts = np.r_[0, np.nonzero(np.diff(c))[0] + 1]
    sizes = np.diff(np.r_[starts, len(c)])
    row = np.repeat(np.arange(len(starts)), sizes)
    col = np.arange(len(c)) - np.repeat(starts, sizes)
    return order, row, col


def family_weights(fam_codes: np.ndarray, overall: np.ndarray) -> np.ndarray:
    """Weights (mean 1 per family) of the hierarchical family of a tracking call.

    A call that tests the whole model (segment None) together with segments gives half of
    the family's weight to the whole-model rows and shares the other half among the segment
    rows; any other family weighs its rows equally. Weighted tests compare ``p / weight``
    (Genovese, Roeder & Wasserman 2006), so the whole model keeps the power of a call without
    segments at half the level while twenty segments of 50 rows split the rest.

    Examples
    --------
    >>> family_weights(np.array([0, 0, 0, 0, 1]), np.array([True, True, False, False, True])).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    >>> family_weights(np.zeros(4, int), np.array([True, False, False, False])).tolist()
    [2.0, 0.6666666666666666, 0.6666666666666666, 0.6666666666666666]
    """
    fam = np.asarray(fam_codes)
    if fam.size == 0:
        return np.zeros(0)
    _, inv = np.unique(fam, return_inverse=True)
    m = np.bincount(inv).astype(float)
    m_all = np.bincount(inv, weights=overall.astype(float))
    m_seg = m - m_all
    split = (m_all > 0) & (m_seg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(overall, 0.5 * m[inv] / m_all[inv], 0.5 * m[inv] / m_seg[inv])
    return np.where(split[inv], w, 1.0)


def _one_family_weights(overall: np.ndarray) -> np.ndarray:
    """:func:`family_weights` of the rows of one family (no grouping needed)."""
    m, m_all = float(len(overall)), float(np.count_nonzero(overall))
    if m_all == 0 or m_all == m:
        return np.ones(len(overall))
    return np.where(overall, 0.5 * m / m_all, 0.5 * m / (m - m_all))


def _family_adjust(p: np.ndarray, fam_codes: np.ndarray, overall: np.ndarray, mask: np.ndarray,
                   method: str, blocks: np.ndarray | None = None) -> np.ndarray:
    """Adjusted p-values of the ``mask`` rows, one family per code (NaN elsewhere).

    The weighted (:func:`family_weights`) ``method`` adjustment of ``q = p / w`` (Genovese,
    Roeder & Wasserman 2006) and, unless ``method`` is ``"none"``, a gate that every adjusted
    p is at least: the call alerts only when its *block Simes* test rejects. ``blocks``
    (integer codes, one block per family, segment and scope; default one block per family)
    splits a family into groups of metrics computed from the same rows. Each block ``b``
    (``m_b`` rows of weight ``w_b``) gets the share ``m_b w_b / m`` of ``alpha`` (weighted
    Bonferroni across blocks) and is tested with Simes inside (``min_j m_b p_(j) / j``):

        gate = min over blocks of  (m / (m_b w_b)) * min_j m_b p_(j) / j

    Simes is valid (level ``alpha``) when the p-values are positively regression dependent
    (PRDS; Benjamini & Yekutieli 2001, Sarkar 2008). Inside a block they are: every test is
    one-sided towards *worse*, and the metrics of one batch are (asymptotically) jointly normal
    with non-negative correlations (more errors lower accuracy, macro P/R/F1 and AUC and raise
    log loss), so the call's family-wise error stays at most ``alpha`` whatever the
    dependence across blocks. Unlike the weighted Bonferroni gate used before
    (``m * min(p / w) < alpha``), metrics that fall together do not pay for each other: a
    5-class batch whose five metrics all reach ``p`` (six rows with its window) alerts from
    ``p < alpha / 1.2``, not ``alpha / 6``. Across blocks (batch vs window, whole model vs
    segments) Bonferroni stays: a window row repeats its batch row's question, and a
    full-family Simes test let borderline 50-row batches alert through their own window (5-class,
    n = 50, stable: 1.0 % / 1.17 % of calls on two seeds, the block gate 0.95 % / 1.0 %, the
    Bonferroni gate 0.85 % / 0.83 %). Every adjusted p is at least the full-family Simes p,
    so the gate only removes alerts. Which rows of an open family alert is the ``method``'s
    answer (Benjamini-Hochberg by default).
    """
    out = np.full(len(p), np.nan)
    if not mask.any():
        return out
    idx = np.nonzero(mask)[0]
    if idx.size == 1:
        # a family of one test (weight 1): every method's adjusted p and the gate are p itself
        out[idx] = np.minimum(p[idx], 1.0)
        return out
    fam = fam_codes[idx]
    if fam[0] == fam[-1] and (fam == fam[0]).all():
        w = _one_family_weights(overall[idx])
        out[idx] = _one_family(p[idx] / w, p[idx], w, method, None if blocks is None else blocks[idx])
        return out
    w = family_weights(fam, overall[idx])
    q = p[idx] / w
    order, row, col = _groups(fam)
    M = np.full((int(row.max()) + 1, int(col.max()) + 1), np.nan)
    M[row, col] = q[order]
    A = adjust_pvalues(M, method)
    if method != "none":
        gate = _block_gate(p[idx], fam, fam if blocks is None else blocks[idx], w)
        A[row, col] = np.maximum(A[row, col], gate[fam[order]])
    out[idx[order]] = A[row, col]
    return out


def _one_family(q: np.ndarray, p: np.ndarray, w: np.ndarray, method: str, blocks: np.ndarray | None) -> np.ndarray:
    """:func:`_family_adjust` of the rows of one family (a tracking call's), in row order:
    the same operations on the family's row alone, without the padded matrix of many
    families (the tested p-values are finite, so no row needs padding)."""
    adjusted = adjust_pvalues(q[None, :], method)[0]
    if method == "none":
        return adjusted
    fam = np.zeros(len(q), dtype=np.intp)
    (gate,) = _block_gate(p, fam, fam if blocks is None else blocks, w)
    return np.maximum(adjusted, gate)


def _block_gate(p: np.ndarray, fam: np.ndarray, blocks: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The block Simes gate of every family (indexed by its code ``0 .. max(fam)``).

    ``p``: finite p-values; ``fam``: family codes; ``blocks``: block codes (a block lies in
    one family; any integers); ``w``: row weights, constant in a block. Each block's Simes
    p, ``min_j m_b p_(j) / j`` (capped at 1), scaled by ``m / (m_b w_b)``; a family's gate is
    the smallest over its blocks, capped at 1 (see :func:`_family_adjust`).
    """
    order = np.lexsort((p, blocks))                     # by block, then p within a block
    b_sorted = blocks[order]
    starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    m_b = sizes.astype(float)
    j = np.arange(1, len(order) + 1, dtype=float) - np.repeat(starts, sizes)
    simes = np.minimum(np.minimum.reduceat(p[order] * np.repeat(m_b, sizes) / j, starts), 1.0)
    first = order[starts]                               # a row of each block
    m_fam = np.bincount(fam).astype(float)
    gate = np.full(len(m_fam), np.inf)
    np.minimum.at(gate, fam[first], simes * m_fam[fam[first]] / (m_b * w[first]))
    return np.minimum(gate, 1.0)


def _blocks(fam_codes: np.ndarray, segment: np.ndarray, scope: np.ndarray, overall: np.ndarray) -> np.ndarray:
    """Integer code of each row's (family, segment, scope): the blocks of :func:`_family_adjust`.

    ``overall`` marks the whole-model rows (segment missing), which form their own block.
    """
    keys = np.empty(len(fam_codes), dtype=object)
    seg = np.where(overall, "\x00overall", np.asarray(segment, dtype=object))
    keys[:] = list(zip(fam_codes.tolist(), seg.tolist(), scope.astype(str).tolist(), strict=True))
    return _factorize(keys)


def _col(frame: pd.DataFrame, name: str, default: float = np.nan) -> np.ndarray:
    if name in frame:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)
    return np.full(len(frame), default)


def _table(metrics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: higher_is_better (+1 / -1, 0 for none) and the test kind, from the metric table."""
    uniq, inv = np.unique(metrics.astype(str), return_inverse=True)
    hib = np.empty(len(uniq))
    test = np.empty(len(uniq), dtype=object)
    for i, name in enumerate(uniq):
        if name == "performance_score":
            hib[i], test[i] = 1.0, "floor_z"
            continue
        spec = get_metric(name)
        hib[i] = 0.0 if spec.higher_is_better is None else (1.0 if spec.higher_is_better else -1.0)
        test[i] = spec.test
    return hib[inv], test[inv]


def decide(rows: pd.DataFrame, settings: DetectionSettings) -> pd.DataFrame:
    """Decide every row of a frame of comparisons at once.

    Parameters
    ----------
    rows : DataFrame
        One row per comparison with the columns of :data:`ROW_COLUMNS`: ``family`` (one
        multiple-testing family per value: one tracking call), ``segment``, ``metric``,
        ``scope`` (``"batch"``, ``"window"`` or ``"floor"``; default ``"batch"``), the
        current ``value`` / ``se`` / ``n`` / ``successes`` / ``trials`` and the baseline's
        ``baseline`` / ``baseline_se`` / ``baseline_successes`` / ``baseline_trials``. An
        optional ``threshold`` column overrides ``settings.thresholds``; ``floor`` rows
        carry the performance score as ``value`` with its standard error.
    settings : DetectionSettings

    Returns
    -------
    DataFrame
        ``rows`` (same order and index) plus :data:`DECISION_COLUMNS`.

    Examples
    --------
    >>> rows = pd.DataFrame({"family": [0, 0], "metric": ["accuracy", "log_loss"],
    ...     "value": [0.70, 0.45], "se": [0.0065, 0.01], "successes": [3500, None],
    ...     "trials": [5000, None], "baseline": [0.90, 0.35], "baseline_se": [0.004, 0.008],
    ...     "baseline_successes": [4500, None], "baseline_trials": [5000, None]})
    >>> s = DetectionSettings(thresholds={"accuracy": 0.05, "log_loss": 0.10})
    >>> out = decide(rows, s)
    >>> out[["metric", "test", "degraded", "severity", "retraining"]].values.tolist()
    [['accuracy', 'proportions_score', True, 'critical', False], ['log_loss', 'welch_z', True, 'critical', True]]
    """
    out = rows.reset_index(drop=True).copy()
    if "scope" not in out:
        out["scope"] = "batch"
    if "segment" not in out:
        out["segment"] = None
    cols: dict[str, Any] = {"family": out["family"].to_numpy(object), "segment": out["segment"].to_numpy(object),
                            "scope": out["scope"].to_numpy(object), "metric": out["metric"].to_numpy(object)}
    for name in _NUMERIC:
        if name in out:
            cols[name] = _col(out, name)
    decided = _decide_arrays(cols, settings)
    for name in DECISION_COLUMNS:
        out[name] = decided[name]
    return out


#: Numeric input columns of :func:`_decide_arrays` (missing ones are NaN).
_NUMERIC = ("value", "se", "n", "successes", "trials", "baseline", "baseline_se", "baseline_successes",
            "baseline_trials", "threshold")


def _num(cols: Mapping[str, Any], name: str, B: int) -> np.ndarray:
    """A numeric column as a fresh float array (None / missing -> NaN)."""
    x = cols.get(name)
    if x is None:
        return np.full(B, np.nan)
    try:
        return np.array(x, dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def _factorize(values: np.ndarray) -> np.ndarray:
    """Integer codes in order of first appearance (missing values are one code), as ``pd.factorize``."""
    if len(values) > 256:
        return pd.factorize(values, use_na_sentinel=False)[0]
    seen: dict[Any, int] = {}
    out = np.empty(len(values), dtype=np.intp)
    for i, v in enumerate(values):
        out[i] = seen.setdefault(_NA if _is_missing(v) else v, len(seen))
    return out


_NA = object()


def _batch_partner(fam: np.ndarray, seg: np.ndarray, metric: np.ndarray, scope: np.ndarray,
                   overall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(has a batch row, its row index) per row: the first ``batch`` row of the same family,
    segment and metric."""
    B = len(scope)
    if B > 256:
        key = pd.MultiIndex.from_arrays([fam, seg, metric, scope])
        batch_key = pd.MultiIndex.from_arrays([fam, seg, metric, np.full(B, "batch", dtype=object)])
        pos = pd.Series(np.arange(B), index=key)
        pos = pos[~pos.index.duplicated()]
        partner = pos.reindex(batch_key).to_numpy(float)
        has = np.isfinite(partner)
        return has, np.where(has, partner, 0).astype(int)
    seg_key = [_NA if o else s for s, o in zip(seg, overall, strict=True)]
    first: dict[tuple, int] = {}
    for i in range(B):
        if scope[i] == "batch":
            first.setdefault((fam[i], seg_key[i], metric[i]), i)
    idx = np.array([first.get((fam[i], seg_key[i], metric[i]), -1) for i in range(B)], dtype=int)
    has = idx >= 0
    return has, np.where(has, idx, 0)


def _decide_arrays(cols: Mapping[str, Any], settings: DetectionSettings) -> dict[str, np.ndarray]:
    """The decision core on columns: :func:`decide` without a DataFrame.

    ``cols`` maps :data:`ROW_COLUMNS` (and optionally ``threshold``) to equal-length
    sequences; ``family`` and ``metric`` are required, ``scope`` defaults to ``"batch"`` and
    ``segment`` to None, missing numeric columns to NaN. Returns :data:`DECISION_COLUMNS` as
    arrays in row order (what :func:`decide` adds to its frame).
    """
    metric = np.asarray(cols["metric"], dtype=object)
    B = len(metric)
    scope = np.asarray(cols["scope"], dtype=object) if cols.get("scope") is not None else \
        np.full(B, "batch", dtype=object)
    seg = np.asarray(cols["segment"], dtype=object) if cols.get("segment") is not None else \
        np.full(B, None, dtype=object)
    fam = np.asarray(cols["family"], dtype=object)
    c = _num(cols, "value", B)
    se = _num(cols, "se", B)
    b = _num(cols, "baseline", B)
    se_b = _num(cols, "baseline_se", B)
    s1, n1 = _num(cols, "successes", B), _num(cols, "trials", B)
    s0, n0 = _num(cols, "baseline_successes", B), _num(cols, "baseline_trials", B)
    floor = scope == "floor"
    if cols.get("threshold") is not None:
        thr = _num(cols, "threshold", B)
    else:
        thr = np.array([settings.thresholds.get(m, np.nan) for m in metric], float)
    thr[floor] = settings.low_performance_threshold
    b = np.where(floor, settings.low_performance_threshold, b)
    se_b = np.where(floor, 0.0, se_b)
    hib, test = _table(metric) if B else (np.empty(0), np.empty(0, dtype=object))

    relative = settings.threshold_mode == "relative"
    gating = settings.gating
    reason = np.full(B, None, dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        worse = (b - c) * hib                                   # > 0: worse, whatever the direction
        rel_change = np.where(b != 0, (c - b) / np.abs(b), np.nan)
        use_rel = relative & ~floor
        scale = np.where(use_rel, np.abs(b), 1.0)
        degradation = np.where(use_rel, worse / np.abs(b), worse)
        degradation[floor] = worse[floor]
        bad_base = ~np.isfinite(b) | (use_rel & (b == 0))
        degradation[bad_base] = np.nan
        margin = thr * scale                                    # in the metric's units
        null_margin = np.where(floor | (gating != "minimum_effect"), 0.0,
                               margin * settings.minimum_effect_fraction)
        se_d = np.sqrt(se**2 + se_b**2)

        # proportions: score test on the counts (the batch and the baseline both carry them)
        prop = (test == "proportion") & np.isfinite(s1) & (n1 > 0) & np.isfinite(s0) & (n0 > 0)
        se_wald = se_d.copy()

        def statistic(null: np.ndarray) -> np.ndarray:
            """z of H0: degradation <= ``null`` (in the metric's units), for every row."""
            z = np.where(se_wald > 0, (worse - null) / se_wald, np.nan)
            if prop.any():
                # H0: hib * (p0 - p1) <= m  <=>  p1 - p0 >= -m (hib) / <= m (lower is better)
                stat, _ = score_test_diff(s1[prop], n1[prop], s0[prop], n0[prop], -hib[prop] * null[prop],
                                          skew=True)
                zp = -hib[prop] * stat
                # degenerate counts (0 or 1 on both sides): Wald with a variance floor
                p1_, p0_ = s1[prop] / n1[prop], s0[prop] / n0[prop]
                wse = np.sqrt(np.maximum(p1_ * (1 - p1_), 0.25 / n1[prop]) / n1[prop]
                              + np.maximum(p0_ * (1 - p0_), 0.25 / n0[prop]) / n0[prop])
                zw = (hib[prop] * (p0_ - p1_) - null[prop]) / wse
                z[prop] = np.where(np.isfinite(zp), zp, zw)
            return z

        z = statistic(null_margin)
        if prop.any():
            p1_, p0_ = s1[prop] / n1[prop], s0[prop] / n0[prop]
            se_d[prop] = np.sqrt(np.maximum(p1_ * (1 - p1_), 1e-12) / n1[prop]
                                 + np.maximum(p0_ * (1 - p0_), 1e-12) / n0[prop])
        test_name = np.where(prop, "proportions_score", np.where(test == "proportion", "welch_z", test))
        test_name = np.where(floor, "floor_z", test_name).astype(object)
        p = _norm_sf(z)

    undefined = ~np.isfinite(c)
    reason[~np.isfinite(p)] = "no_standard_error"
    reason[bad_base & np.isfinite(b)] = "baseline_is_zero"
    reason[~np.isfinite(b) & ~floor] = "undefined_baseline"
    reason[undefined] = "undefined_current"
    # minimum information: below MIN_ROWS_BOOTSTRAP_Z rows the lower tail of a macro metric's
    # bootstrap z is far too light (5 classes x 10 rows: F1 p = 6e-7 on a stable batch)
    n_rows = _num(cols, "n", B)
    few = (test == "bootstrap_z") & np.isfinite(n_rows) & (n_rows < MIN_ROWS_BOOTSTRAP_Z)
    reason[few & ~undefined] = "too_few_rows"
    no_test = undefined | bad_base | (hib == 0) | few
    test_name[no_test] = "none"
    z[no_test] = np.nan
    p[no_test] = np.nan

    practical = np.isfinite(degradation) & (degradation >= thr)
    practical[floor] = np.isfinite(worse[floor]) & (worse[floor] > 0)
    # window rows only confirm what the batch itself shows
    overall = pd.isna(seg) if B else np.zeros(0, bool)
    if (scope == "window").any():
        has, part_idx = _batch_partner(fam, seg, metric, scope, overall)
        window = scope == "window"
        practical = practical & ~(window & ~(has & practical[part_idx]))
    else:
        window = np.zeros(B, bool)
        part_idx = np.zeros(B, int)

    # one family per tracking call: every comparison with a p-value, practical or not
    # (adjusting only the rows whose point estimate passed the threshold would shrink the
    # family after looking at the data); floor rows are their own question
    tested = np.isfinite(p) & ~floor
    fam_codes = _factorize(fam) if B else np.zeros(0, int)
    blocks = _blocks(fam_codes, seg, scope, overall)
    adjusted = _family_adjust(p, fam_codes, overall, tested, settings.fdr_method, blocks)
    adjusted[floor] = _family_adjust(p, fam_codes, np.ones(B, bool), floor & np.isfinite(p), "holm")[floor]
    significant = np.isfinite(adjusted) & (adjusted < settings.alpha)
    if gating == "none":
        degraded = practical.copy()
    else:
        degraded = practical & significant
    # a window row is degraded only when its batch row is not
    if window.any():
        degraded[window] = degraded[window] & ~degraded[part_idx[window]]

    severity = _severity(np.where(floor, np.inf, degradation), thr, settings.severity_bands)
    severity[floor] = np.where(degraded[floor], "critical", None)
    severity[~degraded] = None

    z_a = _norm_isf(settings.alpha)
    z_b = _norm_isf(0.2)
    with np.errstate(invalid="ignore", divide="ignore"):
        extra = (z_a + z_b) * se_d / scale
        mdd = (null_margin / scale + extra) if gating == "minimum_effect" else np.maximum(thr, extra)
    mdd = np.where(floor, np.nan, mdd)

    # retraining: the call's worst degraded (non-floor) row, when it reaches the threshold
    retraining = np.zeros(B, bool)
    # retraining is costly: the degradation must be credibly *beyond* the retraining threshold
    # (same test, null "degradation <= auto_retraining_threshold"; "significance" gating: > 0)
    cand = degraded & ~floor & (degradation >= settings.auto_retraining_threshold)
    if cand.any() and gating != "none":
        frac = 1.0 if gating == "minimum_effect" else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            p_rt = _norm_sf(statistic(settings.auto_retraining_threshold * scale * frac))
        # the same family adjustment as the degradation test (rule 4), over every tested row
        # (not only the candidates: choosing them first would shrink the family)
        p_rt = _family_adjust(p_rt, fam_codes, overall, tested & np.isfinite(p_rt), settings.fdr_method,
                              blocks)
        cand &= np.isfinite(p_rt) & (p_rt < settings.alpha)
    if cand.any():
        idx = np.nonzero(cand)[0]
        worst = pd.Series(degradation[idx], index=idx).groupby(fam_codes[idx], sort=False).idxmax()
        retraining[worst.to_numpy(int)] = True

    return {
        "higher_is_better": np.where(hib == 0, None, hib > 0).astype(object),
        "threshold": thr,
        "relative_change": rel_change,
        "degradation": degradation,
        "practical": practical,
        "test": test_name,
        "statistic": z,
        "p_value": p,
        "adjusted_p_value": adjusted,
        "significant": significant,
        "degraded": degraded,
        "severity": severity,
        "min_detectable_degradation": mdd,
        "retraining": retraining,
        "reason": reason,
    }
