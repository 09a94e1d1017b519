"""Prediction drift between two count vectors, and its link with performance.

perfkit stores states, not rows, so drift is measured on *counts*: predicted-class counts
(``kind="categorical"``) or binned score histograms (``kind="binned"``, bins in order).

Size and significance are reported separately. The population stability index (PSI) and the
Jensen-Shannon distance measure *how much* the distribution moved; the test says whether the
move is distinguishable from sampling noise. With large batches a negligible move is
significant, so read ``psi_label`` for the size.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from perfkit._json import json_safe as _json_safe
from perfkit.exceptions import (
    EmptyBatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)

__all__ = [
    "CorrelationResult",
    "DriftResult",
    "compare_distributions",
    "compare_distributions_many",
    "drift_performance_correlation",
    "psi_label",
]


def _html_table(title: str, d: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.6g}"
        return "—" if v is None else str(v)

    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td>{html.escape(fmt(v))}</td></tr>"
        for k, v in d.items()
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{rows}</table></div>"


def psi_label(psi: float) -> str:
    """Conventional reading of a PSI value.

    ``"none"`` below 0.1, ``"moderate"`` from 0.1 to 0.25, ``"major"`` above 0.25.

    Examples
    --------
    >>> psi_label(0.05), psi_label(0.1), psi_label(0.3)
    ('none', 'moderate', 'major')
    """
    psi = float(psi)
    if math.isnan(psi):
        raise NonFiniteError("psi is NaN", parameter="psi")
    if psi < 0:
        raise ValidationError(f"psi must be >= 0, got {psi!r}", parameter="psi")
    if psi < 0.1:
        return "none"
    if psi <= 0.25:
        return "moderate"
    return "major"


@dataclass(frozen=True)
class DriftResult:
    """Comparison of a current count vector with a reference one.

    Attributes
    ----------
    kind : str
        ``"categorical"`` or ``"binned"``.
    psi : float
        Population stability index ``sum (q - p) ln(q / p)`` on eps-smoothed proportions.
    psi_label : str
        :func:`psi_label` of ``psi``.
    js_distance : float
        Jensen-Shannon distance (base 2, in [0, 1]) of the unsmoothed proportions.
    test : str
        ``"chi2_homogeneity"`` (categorical) or ``"ks_binned"`` (binned).
    statistic : float
        Chi-square statistic, or the KS statistic ``max |F_ref - F_cur|`` over bin edges.
    p_value : float
        P-value of the test.
    dof : int or None
        Degrees of freedom of the chi-square test.
    alpha : float
        Level of the test.
    drifted : bool
        ``p_value < alpha``.
    n_reference, n_current : int
        Total counts.
    n_bins : int
        Length of the count vectors.
    eps : float
        Smoothing constant used for the PSI.
    """

    kind: str
    psi: float
    psi_label: str
    js_distance: float
    test: str
    statistic: float
    p_value: float
    dof: int | None
    alpha: float
    drifted: bool
    n_reference: int
    n_current: int
    n_bins: int
    eps: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN/inf become ``None``)."""
        return _json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: columns ``quantity``, ``value``, ``ci_lower``, ``ci_upper``, ``drifted``."""
        rows = [
            ("psi", self.psi),
            ("js_distance", self.js_distance),
            (f"{self.test}_statistic", self.statistic),
            (f"{self.test}_p_value", self.p_value),
        ]
        frame = pd.DataFrame(rows, columns=["quantity", "value"])
        frame["value"] = frame["value"].astype(float)
        frame["ci_lower"] = np.nan
        frame["ci_upper"] = np.nan
        frame["drifted"] = self.drifted
        return frame

    def _repr_html_(self) -> str:
        return _html_table("Prediction drift", self.to_dict())


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (``scipy.spatial.distance.jensenshannon``'s arithmetic)."""
    from scipy.special import rel_entr

    p, q = p / np.sum(p), q / np.sum(q)
    m = (p + q) / 2.0
    js = (np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / np.log(2)
    return float(np.sqrt(js / 2.0))


def _counts(x: Any, parameter: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ShapeError(
            f"{parameter} must be one-dimensional, got shape {arr.shape}", parameter=parameter
        )
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError(f"{parameter} contains NaN or inf", parameter=parameter)
    if np.any(arr < 0):
        raise ValidationError(f"{parameter} must be non-negative counts", parameter=parameter)
    if arr.sum() <= 0:
        raise EmptyBatchError(f"{parameter} has no counts", parameter=parameter)
    return arr


def compare_distributions(
    reference_counts: Any,
    current_counts: Any,
    *,
    kind: Literal["categorical", "binned"] = "categorical",
    eps: float = 1e-4,
    alpha: float = 0.05,
) -> DriftResult:
    """Compare two count vectors: PSI, Jensen-Shannon distance and a homogeneity test.

    Parameters
    ----------
    reference_counts, current_counts : array-like of shape (k,)
        Counts per class (categorical) or per ordered score bin (binned), same bins.
    kind : {"categorical", "binned"}, default "categorical"
        Chooses the test: chi-square test of homogeneity on the 2 x k table (all-zero
        columns dropped, no Yates correction) for categories; a two-sample
        Kolmogorov-Smirnov test on the binned CDFs for ordered bins.
    eps : float, default 1e-4
        PSI smoothing: proportions become ``(p_i + eps) / (1 + k eps)``, so empty bins give
        a finite PSI and the smoothed vector still sums to one.
    alpha : float, default 0.05
        Level of the test.

    Returns
    -------
    DriftResult

    Notes
    -----
    The binned KS statistic is ``D = max_j |F_ref(j) - F_cur(j)|`` over bin edges; its p-value
    is the asymptotic Kolmogorov one, ``kstwobign.sf(D sqrt(n_eff))`` with
    ``n_eff = n1 n2 / (n1 + n2)``. Binning can only lower ``D`` (the CDFs are compared at the
    edges only), so the test is conservative for binned data.

    Examples
    --------
    >>> res = compare_distributions([500, 300, 200], [420, 330, 250])
    >>> res.test, res.drifted, round(res.psi, 3), res.psi_label
    ('chi2_homogeneity', True, 0.028, 'none')
    """
    if kind not in ("categorical", "binned"):
        raise ValidationError(
            f"kind must be 'categorical' or 'binned', got {kind!r}", parameter="kind"
        )
    if not (math.isfinite(eps) and eps > 0):
        raise ValidationError(f"eps must be > 0, got {eps!r}", parameter="eps")
    if not (0.0 < alpha < 1.0):
        raise ValidationError(f"alpha must be in (0, 1), got {alpha!r}", parameter="alpha")
    ref = _counts(reference_counts, "reference_counts")
    cur = _counts(current_counts, "current_counts")
    if ref.shape != cur.shape:
        raise ShapeError(
            f"reference_counts has {ref.size} bins but current_counts has {cur.size}",
            parameter="current_counts",
        )
    k = ref.size
    n1, n2 = float(ref.sum()), float(cur.sum())
    p, q = ref / n1, cur / n2
    ps, qs = (p + eps) / (1 + k * eps), (q + eps) / (1 + k * eps)
    psi = float(np.sum((qs - ps) * np.log(qs / ps)))
    js = _js_distance(p, q)

    # The tests are written out with numpy and scipy.special (the functions behind
    # scipy.stats.chi2.sf and kstwobign.sf): the same numbers as chi2_contingency /
    # kstwobign, without their per-call overhead (~1 ms; drift runs once per batch).
    from scipy import special

    dof: int | None
    if kind == "categorical":
        keep = (ref + cur) > 0
        table = np.vstack([ref[keep], cur[keep]])
        if table.shape[1] < 2:
            stat, pval, dof = 0.0, 1.0, 0
        else:
            expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
            stat = float(np.sum((table - expected) ** 2 / expected))
            dof = int(table.shape[1] - 1)
            pval = float(special.chdtrc(dof, stat))
        test = "chi2_homogeneity"
    else:
        stat = float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
        n_eff = n1 * n2 / (n1 + n2)
        pval = float(special.kolmogorov(stat * math.sqrt(n_eff)))
        dof = None
        test = "ks_binned"

    return DriftResult(
        kind=kind,
        psi=psi,
        psi_label=psi_label(max(psi, 0.0)),
        js_distance=js,
        test=test,
        statistic=stat,
        p_value=pval,
        dof=dof,
        alpha=alpha,
        drifted=bool(pval < alpha),
        n_reference=int(round(n1)),
        n_current=int(round(n2)),
        n_bins=k,
        eps=eps,
    )


def compare_distributions_many(
    reference_counts: Any,
    current_counts: Any,
    *,
    kind: Literal["categorical", "binned"] = "categorical",
    eps: float = 1e-4,
    alpha: float = 0.05,
) -> list[DriftResult]:
    """:func:`compare_distributions` of each row pair, computed for all rows at once.

    ``reference_counts`` and ``current_counts`` are arrays of shape (n, k). The result equals
    ``[compare_distributions(r, c, kind=kind, eps=eps, alpha=alpha) for r, c in zip(...)]``
    number for number (the same operations, row-wise); a report compares every batch with its
    baseline this way. Rows the vectorized pass cannot take (invalid counts, a categorical
    table with an empty column) go through :func:`compare_distributions` one by one, which
    raises its usual errors.

    Examples
    --------
    >>> ref = np.array([[500, 300, 200], [500, 300, 200]])
    >>> res = compare_distributions_many(ref, [[420, 330, 250], [500, 300, 200]])
    >>> [r.drifted for r in res], res[0] == compare_distributions(ref[0], [420, 330, 250])
    ([True, False], True)
    """
    if kind not in ("categorical", "binned"):
        raise ValidationError(
            f"kind must be 'categorical' or 'binned', got {kind!r}", parameter="kind"
        )
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    if ref.ndim != 2 or ref.shape != cur.shape:
        raise ShapeError(
            f"reference_counts and current_counts must be (n, k) arrays of one shape, got "
            f"{ref.shape} and {cur.shape}", parameter="current_counts",
        )
    n, k = ref.shape
    if n == 0:
        return []
    n1, n2 = ref.sum(axis=1), cur.sum(axis=1)
    fast = np.isfinite(ref).all(axis=1) & np.isfinite(cur).all(axis=1)
    fast &= ~((ref < 0).any(axis=1) | (cur < 0).any(axis=1)) & (n1 > 0) & (n2 > 0)
    if kind == "categorical":
        fast &= ((ref + cur) > 0).all(axis=1) & (k >= 2)
    if not (math.isfinite(eps) and eps > 0 and 0.0 < alpha < 1.0) or not fast.any():
        fast[:] = False
    out: list[DriftResult | None] = [None] * n
    for i in np.flatnonzero(~fast):
        out[i] = compare_distributions(ref[i], cur[i], kind=kind, eps=eps, alpha=alpha)
    rows = np.flatnonzero(fast)
    if rows.size:
        ref, cur, n1, n2 = ref[rows], cur[rows], n1[rows], n2[rows]
        # compare_distributions' arithmetic, row by row (sums over contiguous rows, as there)
        p, q = ref / n1[:, None], cur / n2[:, None]
        ps, qs = (p + eps) / (1 + k * eps), (q + eps) / (1 + k * eps)
        psi = np.sum((qs - ps) * np.log(qs / ps), axis=1)
        js = _js_distances(p, q)
        from scipy import special

        if kind == "categorical":
            table = np.concatenate([ref, cur], axis=1)  # each row: the 2 x k table, C order
            total = table.sum(axis=1)
            col = ref + cur
            expected = np.concatenate([n1[:, None] * col, n2[:, None] * col], axis=1) / total[:, None]
            stat = np.sum((table - expected) ** 2 / expected, axis=1)
            dof: int | None = int(k - 1)
            pval = special.chdtrc(dof, stat)
            test = "chi2_homogeneity"
        else:
            stat = np.max(np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1)), axis=1)
            n_eff = n1 * n2 / (n1 + n2)
            pval = special.kolmogorov(stat * np.sqrt(n_eff))
            dof = None
            test = "ks_binned"
        for j, i in enumerate(rows.tolist()):
            out[i] = DriftResult(
                kind=kind, psi=float(psi[j]), psi_label=psi_label(max(float(psi[j]), 0.0)),
                js_distance=float(js[j]), test=test, statistic=float(stat[j]), p_value=float(pval[j]),
                dof=dof, alpha=alpha, drifted=bool(pval[j] < alpha), n_reference=int(round(float(n1[j]))),
                n_current=int(round(float(n2[j]))), n_bins=k, eps=eps,
            )
    return out  # type: ignore[return-value]


def _js_distances(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:func:`_js_distance` of each row pair."""
    from scipy.special import rel_entr

    p, q = p / np.sum(p, axis=1)[:, None], q / np.sum(q, axis=1)[:, None]
    m = (p + q) / 2.0
    js = (np.sum(rel_entr(p, m), axis=1) + np.sum(rel_entr(q, m), axis=1)) / np.log(2)
    return np.sqrt(js / 2.0)


@dataclass(frozen=True)
class CorrelationResult:
    """Rank (or linear) correlation between drift and metric changes.

    Attributes
    ----------
    method : str
        ``"spearman"``, ``"kendall"`` or ``"pearson"``.
    rho : float
        Correlation coefficient (NaN when not computable).
    p_value : float
        Two-sided p-value (NaN when not computable).
    n : int
        Complete pairs used (pairs with a NaN are dropped).
    reason : str or None
        Why ``rho`` is NaN (fewer than 3 pairs, constant input), else ``None``.
    """

    method: str
    rho: float
    p_value: float
    n: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN becomes ``None``)."""
        return _json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        """One-row tidy frame: ``quantity``, ``value``, ``p_value``, ``n``, ``method``."""
        return pd.DataFrame(
            [
                {
                    "quantity": "correlation",
                    "value": self.rho,
                    "p_value": self.p_value,
                    "n": self.n,
                    "method": self.method,
                    "reason": self.reason,
                }
            ]
        )

    def _repr_html_(self) -> str:
        return _html_table("Drift vs performance", self.to_dict())


def drift_performance_correlation(
    drift_values: Any,
    metric_changes: Any,
    method: Literal["spearman", "kendall", "pearson"] = "spearman",
) -> CorrelationResult:
    """Correlation between a drift measure and metric changes over the same batches.

    Parameters
    ----------
    drift_values : array-like
        Drift per batch (e.g. PSI against the reference).
    metric_changes : array-like
        Metric change per batch (e.g. accuracy drop against the baseline).
    method : {"spearman", "kendall", "pearson"}, default "spearman"

    Returns
    -------
    CorrelationResult
        ``rho`` and ``p_value`` are NaN with a ``reason`` when there are fewer than three
        complete pairs or one input is constant.

    Examples
    --------
    >>> r = drift_performance_correlation([0.01, 0.05, 0.1, 0.2], [0.0, 0.01, 0.03, 0.08])
    >>> r.rho, r.n
    (1.0, 4)
    """
    if method not in ("spearman", "kendall", "pearson"):
        raise ValidationError(
            f"method must be one of ['kendall', 'pearson', 'spearman'], got {method!r}",
            parameter="method",
        )
    x = np.asarray(drift_values, dtype=float).ravel()
    y = np.asarray(metric_changes, dtype=float).ravel()
    if x.shape != y.shape:
        raise ShapeError(
            f"drift_values has {x.size} values but metric_changes has {y.size}",
            parameter="metric_changes",
        )
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = float("nan")
    if n < 3:
        return CorrelationResult(method, nan, nan, n, "fewer than 3 complete pairs")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return CorrelationResult(method, nan, nan, n, "constant input")
    if method == "pearson":
        from scipy import stats

        res = stats.pearsonr(x, y)
        rho, p = float(res.statistic), float(res.pvalue)
    else:  # scipy.stats.spearmanr / kendalltau, without importing scipy.stats
        from perfkit.analysis import _stats

        rho, p = (_stats.spearman_r if method == "spearman" else _stats.kendall_tau)(x, y)
    return CorrelationResult(method, rho, p, n, None)
