"""Trend analysis of a metric's history: slope, direction, time to breach, change point.

The input is a *series of points* (one per batch or window), each with its sampling
variance, never the raw rows: perfkit keeps states, and every stored value comes with its
standard error.

How the direction is decided
----------------------------
A history of batch metrics has three sources of noise: the sampling noise of each batch
(known: ``variances``), independent between-batch variation (traffic mix, ...) and a slow
day-to-day *wobble* that is correlated in time (seasonality, label delay, upstream drift that
comes and goes). Ignoring the correlation makes a flat history look like a trend far more
often than the nominal level. With at least 12 points (``method="auto"``),
:func:`analyze_trend` therefore always fits ``y = a + b t + u(t) + e`` where ``u`` is an AR(1)
wobble in continuous time (correlation ``phi ** days``, so gaps are handled) and ``e`` has
variance ``var_i + tau^2``; the variance parameters are estimated by restricted maximum
likelihood (REML, less biased than ML on short histories), ``(a, b)`` by GLS with Kenward
and Roger's small-sample covariance (the GLS covariance plus the cost of estimating the
wobble), with ``t`` quantiles on ``n - 2`` degrees of freedom (see
:mod:`perfkit.analysis._trend_ar`). No
autocorrelation pre-test gates the fit: a Ljung-Box test on 30 points rarely fires, yet
ignoring ``phi = 0.8`` doubles the false-trend rate. Shorter histories use a random-effects
weighted regression (weights ``1 / (var_i + tau^2)``, ``tau^2`` by DerSimonian-Laird).

The tolerance is a **rate**: the smallest change per ``horizon_days`` (default 30 days) that
matters, relative to ``|mean value|`` by default. The same decline per day therefore gets the
same answer from a 30-day and an 84-day history (with more points it is only more certain).
The direction is

* ``"degrading"`` / ``"improving"`` when the one-sided ``1 - alpha`` bound of the slope excludes
  zero in that direction **and** the estimated change per horizon exceeds the tolerance;
* ``"stable"`` when the two-sided ``1 - 2 alpha`` interval of the change per horizon lies
  inside ``(-tol, tol)`` (two one-sided tests, TOST);
* ``"uncertain"`` otherwise (often the honest answer with few or noisy batches);
* ``"insufficient_data"`` with fewer than ``min_samples`` valid points.

Measured by ``benchmarks/trend.py`` (flat accuracy histories, batches of 1,000-5,000 rows plus
an AR(1) wobble of sd 0.4 points with phi up to 0.8, 30-84 daily points): at most 11.5 %
called degrading or improving (two-sided nominal 10 %; random-effects WLS ignoring the
wobble: about 20 % at phi 0.8 and 30 points), while the sign of an ``np.polyfit`` slope, the
seed's rule, calls about half of flat histories "degrading". A -0.5 %-a-week decline is
called degrading in 94-100 % of 42-point histories.
"""

from __future__ import annotations

import html
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from perfkit._json import json_safe as _json_safe
from perfkit.analysis import _stats
from perfkit.analysis._trend_ar import fit_ar1_trend, kenward_roger
from perfkit.exceptions import (
    InputTypeError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)

__all__ = [
    "TREND_MAX_POINTS",
    "TREND_MIN_DAYS",
    "ChangePointResult",
    "TrendResult",
    "analyze_trend",
    "daily_points",
    "detect_change_point",
    "naive_trend_direction",
    "trend_from_frame",
]

logger = logging.getLogger("perfkit")

Direction = Literal["degrading", "improving", "stable", "uncertain", "insufficient_data"]

_LJUNG_BOX_ALPHA = 0.05
_METHOD_WLS = "wls_random_effects"
_METHOD_SARIMAX = "sarimax_ar1"
_METHOD_AR = "gls_ar1_reml"
_MIN_AR_POINTS = 12  # fewer points: too few to estimate the wobble, random-effects WLS
_DEFAULT_HORIZON_DAYS = 30.0


# --------------------------------------------------------------------------- helpers


def _to_days(times: Any, *, parameter: str = "times") -> tuple[np.ndarray, Any]:
    """Return (days since the earliest point, original time values).

    Accepts float days, datetimes (tz-aware or naive, not mixed) and pandas Timestamps.
    tz-aware times are compared in UTC. The time values come back as a float array or a
    ``DatetimeIndex`` (indexable like the days; ``list()`` of it gives the Timestamps).
    """
    if isinstance(times, (pd.Series, pd.Index)) and isinstance(times.dtype, pd.DatetimeTZDtype):
        idx = pd.DatetimeIndex(times).tz_convert("UTC")
        if idx.hasnans:
            raise NonFiniteError(f"{parameter} contains missing times (NaT)", parameter=parameter)
        if idx.size == 0:
            return np.empty(0, dtype=float), []
        return np.asarray((idx - idx.min()) / pd.Timedelta(days=1), dtype=float), idx
    if isinstance(times, (pd.Series, pd.Index)):
        raw = times.to_numpy()
    else:
        raw = np.asarray(times)
    if raw.ndim != 1:
        raise ShapeError(
            f"{parameter} must be one-dimensional, got shape {raw.shape}", parameter=parameter
        )
    if raw.size == 0:
        return np.empty(0, dtype=float), []
    if raw.dtype.kind in "iuf":
        days = raw.astype(float)
        if not np.all(np.isfinite(days)):
            raise NonFiniteError(f"{parameter} contains NaN or inf", parameter=parameter)
        return days - days.min(), days
    if raw.dtype.kind == "b":
        raise InputTypeError(
            f"{parameter} must be datetimes or float days, got booleans", parameter=parameter
        )
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(list(raw) if raw.dtype == object else raw))
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{parameter} must be datetimes (all tz-aware or all naive) or float days: {exc}",
            parameter=parameter,
        ) from exc
    if idx.hasnans:
        raise NonFiniteError(f"{parameter} contains missing times (NaT)", parameter=parameter)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC")
    days = np.asarray((idx - idx.min()) / pd.Timedelta(days=1), dtype=float)
    return days, idx


def _dersimonian_laird(y: np.ndarray, X: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian-Laird between-point variance for the meta-regression ``y ~ X``."""
    w = 1.0 / v
    xtwx = X.T @ (w[:, None] * X)
    beta = np.linalg.solve(xtwx, X.T @ (w * y))
    resid = y - X @ beta
    q = float(np.sum(w * resid**2))
    df = len(y) - X.shape[1]
    c = float(w.sum() - np.trace(np.linalg.solve(xtwx, X.T @ ((w**2)[:, None] * X))))
    if c <= 0 or df <= 0:
        return 0.0
    return max(0.0, (q - df) / c)


def _prepare_variances(variances: Any, n: int, warn: list[str]) -> tuple[np.ndarray | None, str]:
    """Validate variances; impute unknown ones. Returns (v or None when all unknown, note)."""
    if variances is None:
        return None, "unknown"
    v = np.asarray(variances, dtype=float)
    if v.shape != (n,):
        raise ShapeError(f"variances has shape {v.shape}, expected ({n},)", parameter="variances")
    if np.any(np.isinf(v)):
        raise NonFiniteError("variances contains inf", parameter="variances")
    if np.any(v[~np.isnan(v)] < 0):
        raise ValidationError("variances must be >= 0", parameter="variances")
    known = ~np.isnan(v)
    positive = known & (v > 0)
    if not positive.any():
        return None, "unknown"
    v = v.copy()
    if (known & (v == 0)).any():
        floor = float(v[positive].min())
        v[known & (v == 0)] = floor
        warn.append(f"zero variances replaced by the smallest positive variance {floor:.3g}")
    if not known.all():
        fill = float(np.median(v[known]))
        v[~known] = fill
        warn.append(f"{int((~known).sum())} unknown variances imputed by the median {fill:.3g}")
    return v, "known"


def _validate_common(alpha: float, min_samples: int) -> None:
    if not (0.0 < alpha < 0.5):
        raise ValidationError(f"alpha must be in (0, 0.5), got {alpha!r}", parameter="alpha")
    if int(min_samples) != min_samples or min_samples < 4:
        raise ValidationError(
            f"min_samples must be an integer >= 4, got {min_samples!r}", parameter="min_samples"
        )


# --------------------------------------------------------------------------- change point


@dataclass(frozen=True)
class ChangePointResult:
    """A single change in level of a series.

    Attributes
    ----------
    statistic : float
        Supremum of the standardised CUSUM of residuals from a constant-mean model
        (statsmodels ``breaks_cusumolsresid``).
    p_value : float
        Its asymptotic p-value (Kolmogorov distribution).
    significant : bool
        ``p_value < alpha``.
    alpha : float
        Level of the test.
    index : int or None
        Position (in time order, among the points used) of the first point *after* the
        change: the split maximising the weighted SSE reduction of a two-mean model.
    time : object or None
        The original time value at ``index``.
    days : float
        ``index`` expressed in days since the first point (NaN without a split).
    mean_before, mean_after : float
        Weighted means of the two segments.
    shift : float
        ``mean_after - mean_before``.
    n_before, n_after : int
        Points in each segment.
    likelihood_ratio : float
        Gaussian likelihood ratio ``n log(SSE_0 / SSE_1)`` of the best split.
    n_points : int
        Points used.
    """

    statistic: float
    p_value: float
    significant: bool
    alpha: float
    index: int | None
    time: Any
    days: float
    mean_before: float
    mean_after: float
    shift: float
    n_before: int
    n_after: int
    likelihood_ratio: float
    n_points: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN/inf become ``None``, times ISO strings)."""
        return _json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        """One-row tidy frame of the result."""
        return pd.DataFrame([self.to_dict()])

    def _repr_html_(self) -> str:
        return _html_table("Change point", self.to_dict())


def _change_point_core(
    days: np.ndarray,
    y: np.ndarray,
    v: np.ndarray | None,
    times: list[Any],
    alpha: float,
    min_segment: int,
) -> ChangePointResult:
    """Change-point test and location on validated, time-sorted, finite inputs."""
    n = len(y)
    nan = float("nan")
    if n < max(2 * min_segment, 4):
        return ChangePointResult(
            nan, nan, False, alpha, None, None, nan, nan, nan, nan, 0, 0, nan, n
        )
    ones = np.ones((n, 1))
    if v is None:
        w = np.ones(n)
    else:
        w = 1.0 / (v + _dersimonian_laird(y, ones, v))
    mean_w = float(np.sum(w * y) / w.sum())
    wresid = np.sqrt(w) * (y - mean_w)
    if np.allclose(wresid, 0.0):
        return ChangePointResult(
            0.0, 1.0, False, alpha, None, None, nan, mean_w, mean_w, 0.0, 0, 0, 0.0, n
        )
    # Only the sup statistic and its p-value are used. Note: statsmodels'
    # RecursiveLSResults._cusum_significance_bounds uses 0.950 as the constant for
    # alpha = 0.10 (Brown-Durbin-Evans give 0.850), so do not use it at alpha = 0.10.
    stat, pval = _stats.cusum_ols_resid(wresid, ddof=1)  # = statsmodels' breaks_cusumolsresid

    # Location: the split maximising the weighted SSE reduction (= the Gaussian LR).
    cw = np.cumsum(w)
    cwy = np.cumsum(w * y)
    cwy2 = np.cumsum(w * y * y)
    sse0 = float(cwy2[-1] - cwy[-1] ** 2 / cw[-1])
    ks = np.arange(min_segment, n - min_segment + 1)
    w1, s1, q1 = cw[ks - 1], cwy[ks - 1], cwy2[ks - 1]
    w2, s2, q2 = cw[-1] - w1, cwy[-1] - s1, cwy2[-1] - q1
    sse_k = (q1 - s1**2 / w1) + (q2 - s2**2 / w2)
    finite = np.flatnonzero(sse_k < math.inf)  # the first smallest finite split, NaN skipped
    assert finite.size
    best = int(finite[np.argmin(sse_k[finite])])
    best_k, best_sse = int(ks[best]), float(sse_k[best])
    m1 = float(np.sum(w[:best_k] * y[:best_k]) / w[:best_k].sum())
    m2 = float(np.sum(w[best_k:] * y[best_k:]) / w[best_k:].sum())
    lr = n * math.log(sse0 / best_sse) if best_sse > 0 else math.inf
    return ChangePointResult(
        statistic=float(stat),
        p_value=float(pval),
        significant=bool(pval < alpha),
        alpha=alpha,
        index=int(best_k),
        time=times[best_k],
        days=float(days[best_k]),
        mean_before=m1,
        mean_after=m2,
        shift=m2 - m1,
        n_before=int(best_k),
        n_after=int(n - best_k),
        likelihood_ratio=float(lr),
        n_points=n,
    )


def _prepare_series(
    times: Any, values: Any, variances: Any, warn: list[str], weights: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Any, int, np.ndarray | None]:
    """Validate, drop NaN values, sort by time.

    Returns days, y, v, times (float array or DatetimeIndex), n_dropped, weights (or None).
    """
    days, tvals = _to_days(times)
    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or len(y) != len(days):
        raise ShapeError(
            f"values has shape {y.shape}, expected ({len(days)},) like times", parameter="values"
        )
    if np.any(np.isinf(y)):
        raise NonFiniteError("values contains inf", parameter="values")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != y.shape:
            raise ShapeError(f"weights has shape {w.shape}, expected ({len(y)},)", parameter="weights")
        if not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise ValidationError("weights must be finite and > 0", parameter="weights")
    v, _ = _prepare_variances(variances, len(y), warn)
    keep = ~np.isnan(y)
    n_dropped = int((~keep).sum())
    order = np.argsort(days[keep], kind="stable")
    days_k = days[keep][order]
    if days_k.size:
        days_k = days_k - days_k.min()
    t_k = tvals[keep][order] if len(tvals) else tvals
    v_k = None if v is None else v[keep][order]
    w_k = None if w is None else w[keep][order]
    return days_k, y[keep][order], v_k, t_k, n_dropped, w_k


TREND_MAX_POINTS = 400
"""Series with more valid points than this (spanning at least :data:`TREND_MIN_DAYS` days)
are fitted on daily points by :func:`analyze_trend` (see :func:`daily_points`)."""

TREND_MIN_DAYS = 30
"""Fewest days a long series must cover to be aggregated to daily points."""


def _day_numbers(days: np.ndarray, tvals: Any) -> np.ndarray:
    """Calendar day (UTC for aware datetimes; the integer part for float days) of each point."""
    if isinstance(tvals, pd.DatetimeIndex):
        first = tvals[0]
        offset = (first - first.normalize()) / pd.Timedelta(days=1)
    else:
        offset = float(np.asarray(tvals, dtype=float)[0]) % 1.0
    return np.floor(days + offset + 1e-12).astype(np.int64)


def daily_points(
    days: np.ndarray,
    values: np.ndarray,
    variances: np.ndarray | None,
    weights: np.ndarray | None,
    day: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """One point per day: weighted means of the values and times of the day's points.

    ``day`` numbers the day of each (time-sorted) point. With ``w`` the weights (the rows
    of each batch; equal without weights) a day's value is ``sum(w y) / sum(w)``, its time
    ``sum(w t) / sum(w)`` and its sampling variance ``sum(w**2 v) / sum(w)**2`` (the batches
    are independent samples). For metrics that are ratios over rows (accuracy, recall ...),
    the row-weighted mean of the batch values is the value of the merged day.

    Returns (days, values, variances or None, weights: the summed weights of each day).

    Examples
    --------
    >>> d, y, v, w = daily_points(np.array([0.1, 0.5, 1.2]), np.array([0.8, 0.9, 0.7]),
    ...                           np.array([0.01, 0.01, 0.02]), np.array([1.0, 3.0, 2.0]),
    ...                           np.array([0, 0, 1]))
    >>> d.round(3).tolist(), y.round(3).tolist(), v.round(5).tolist(), w.tolist()
    ([0.4, 1.2], [0.875, 0.7], [0.00625, 0.02], [4.0, 2.0])
    """
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    starts = np.r_[0, np.flatnonzero(np.diff(day)) + 1]
    wsum = np.add.reduceat(w, starts)
    y = np.add.reduceat(w * values, starts) / wsum
    t = np.add.reduceat(w * days, starts) / wsum
    v = None if variances is None else np.add.reduceat(w * w * variances, starts) / (wsum * wsum)
    return t, y, v, wsum


def detect_change_point(
    times: Any,
    values: Any,
    variances: Any = None,
    *,
    alpha: float = 0.05,
    min_segment: int = 2,
) -> ChangePointResult:
    """Test for a change in level and locate the most likely single change point.

    Parameters
    ----------
    times : sequence of datetimes, pandas Timestamps or float days
        Time of each point.
    values : sequence of float
        Metric value of each point; NaN values are dropped.
    variances : sequence of float, optional
        Sampling variance of each point (NaN = unknown). With variances, points are
        weighted by ``1 / (var_i + tau^2)`` (DerSimonian-Laird ``tau^2``).
    alpha : float, default 0.05
        Level of the CUSUM test.
    min_segment : int, default 2
        Smallest number of points on each side of the split.

    Returns
    -------
    ChangePointResult

    Notes
    -----
    The test is the OLS-residual CUSUM test of Ploberger and Kraemer
    (``statsmodels.stats.diagnostic.breaks_cusumolsresid``) on the (weighted) residuals of a
    constant-mean model; the location is the split that minimises the two-segment weighted
    sum of squares. It looks for one shift in level; a slow drift also makes it significant.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.r_[np.full(15, 0.90), np.full(15, 0.85)] + np.tile([0.004, -0.004], 15)
    >>> cp = detect_change_point(np.arange(30.0), y)
    >>> cp.index, cp.significant, round(cp.shift, 2)
    (15, True, -0.05)
    """
    _validate_common(alpha, 4)
    if int(min_segment) != min_segment or min_segment < 1:
        raise ValidationError(
            f"min_segment must be an integer >= 1, got {min_segment!r}", parameter="min_segment"
        )
    warn: list[str] = []
    days, y, v, tvals, _, _ = _prepare_series(times, values, variances, warn)
    return _change_point_core(days, y, v, list(tvals), alpha, int(min_segment))


# --------------------------------------------------------------------------- trend


@dataclass(frozen=True)
class TrendResult:
    """Trend of one metric's history.

    Attributes
    ----------
    metric : str or None
        Label of the metric.
    direction : str
        ``"degrading"``, ``"improving"``, ``"stable"``, ``"uncertain"`` or
        ``"insufficient_data"`` (see the module docstring for the rule).
    n_points : int
        Valid points used in the fit.
    n_dropped : int
        Points dropped because their value was NaN.
    slope_per_day : float
        Estimated change of the metric per day.
    slope_se : float
        Its standard error.
    slope_ci : tuple of float
        Two-sided ``1 - alpha`` interval of the slope.
    slope_bound : float
        The one-sided ``1 - alpha`` bound used for the decision: the upper bound when the
        slope is negative, the lower bound when it is positive.
    p_value : float
        Two-sided p-value of the slope.
    method : str
        ``"gls_ar1_reml"`` (GLS with a REML-fitted AR(1) wobble, the default with at least
        12 points), ``"wls_random_effects"`` or ``"sarimax_ar1"``.
    tau2 : float
        Independent between-point variance beyond the sampling variances: REML estimate
        for ``"gls_ar1_reml"``; DerSimonian-Laird otherwise (the residual variance when no
        variances were given).
    autocorrelation_detected : bool
        Ljung-Box p-value of the weighted residuals below 0.05 (a diagnostic only: it does
        not decide whether autocorrelation is modelled).
    ljung_box_p, durbin_watson : float
        Residual diagnostics of the weighted regression.
    horizon_days : float
        Period of the tolerance rate (30 days by default): the change is judged per
        ``horizon_days``, whatever the span of the data.
    change_over_horizon : float
        ``slope_per_day * horizon_days``.
    change_ci : tuple of float
        Two-sided ``1 - 2 alpha`` interval of the change (the TOST interval).
    tolerance : float
        Tolerance in metric units per ``horizon_days`` (relative tolerances are multiplied
        by ``|mean_value|``).
    tolerance_mode : str
        ``"relative"`` or ``"absolute"``.
    mean_value : float
        Plain mean of the valid values.
    mann_kendall_tau, mann_kendall_p : float
        Kendall's tau-b of (time, value) and its two-sided p-value (ties corrected).
    mann_kendall_direction : str
        ``"degrading"``, ``"improving"`` (one-sided p below ``alpha``) or ``"no_trend"``.
    agrees : bool or None
        Whether Mann-Kendall and the regression agree (``"no_trend"`` agrees with
        ``"stable"`` and ``"uncertain"``).
    threshold : float or None
        Metric value that would trigger an alert.
    time_to_breach_days : float or None
        Days from the last point until the fitted line crosses ``threshold``; only when
        degrading and not already breached.
    time_to_breach_ci : tuple or None
        Fieller ``1 - alpha`` interval of the time to breach (``(None, None)`` when it is
        unbounded, i.e. the slope is not significant at two-sided level ``alpha``).
    already_breached : bool
        The fitted value at the last point is already beyond ``threshold``.
    change_point : ChangePointResult or None
        Single change-point analysis of the same points.
    intercept : float
        Fitted value at the first point (``days = 0``).
    fitted : tuple of float
        Fitted values at the points (see :meth:`fitted_frame` for the band).
    higher_is_better : bool
    alpha : float
    warnings : tuple of str
        Anything the caller should know (imputed variances, SARIMAX fallback, ...).
    ar_phi : float
        Correlation one day apart of the fitted AR(1) wobble (``"gls_ar1_reml"`` and
        ``"sarimax_ar1"``; NaN otherwise).
    ar_variance : float
        Stationary variance of the fitted wobble (``"gls_ar1_reml"``; NaN otherwise).
    df : float or None
        Degrees of freedom of the ``t`` quantiles (``None``: normal quantiles).
    aggregation : str or None
        ``"daily"`` when a long series was fitted on daily points (see ``max_points`` of
        :func:`analyze_trend`), None when the points were fitted as given.
    """

    metric: str | None
    direction: Direction
    n_points: int
    n_dropped: int
    slope_per_day: float = float("nan")
    slope_se: float = float("nan")
    slope_ci: tuple[float, float] = (float("nan"), float("nan"))
    slope_bound: float = float("nan")
    p_value: float = float("nan")
    method: str | None = None
    tau2: float = float("nan")
    autocorrelation_detected: bool = False
    ljung_box_p: float = float("nan")
    durbin_watson: float = float("nan")
    horizon_days: float = float("nan")
    change_over_horizon: float = float("nan")
    change_ci: tuple[float, float] = (float("nan"), float("nan"))
    tolerance: float = float("nan")
    tolerance_mode: str = "relative"
    mean_value: float = float("nan")
    mann_kendall_tau: float = float("nan")
    mann_kendall_p: float = float("nan")
    mann_kendall_direction: str | None = None
    agrees: bool | None = None
    threshold: float | None = None
    time_to_breach_days: float | None = None
    time_to_breach_ci: tuple[float | None, float | None] | None = None
    already_breached: bool = False
    change_point: ChangePointResult | None = None
    intercept: float = float("nan")
    fitted: tuple[float, ...] = field(default=(), repr=False)
    higher_is_better: bool = True
    alpha: float = 0.05
    warnings: tuple[str, ...] = ()
    ar_phi: float = float("nan")
    ar_variance: float = float("nan")
    df: float | None = None
    aggregation: str | None = None
    _days: tuple[float, ...] = field(default=(), repr=False)
    _times: tuple[Any, ...] = field(default=(), repr=False)
    _band: tuple[tuple[float, float], ...] = field(default=(), repr=False)

    # ------------------------------------------------------------------ exports
    def chart_overlay(self) -> tuple[pd.DataFrame | None, Any]:
        """What a trend chart draws: the fitted band (``timestamp``, ``fitted``, ``lower``,
        ``upper``) and the time of a significant change point; ``(None, None)`` without a fit."""
        if self.direction == "insufficient_data":
            return None, None
        ff = self.fitted_frame()
        band = pd.DataFrame({"timestamp": pd.to_datetime(ff["time"], utc=True), "fitted": ff["fitted"],
                             "lower": ff["lower"], "upper": ff["upper"]})
        cp = self.change_point.time if self.change_point is not None and self.change_point.significant else None
        return band, cp

    def fitted_frame(self) -> pd.DataFrame:
        """Fitted line with its ``1 - alpha`` confidence band, one row per point.

        Columns: ``time``, ``days``, ``fitted``, ``lower``, ``upper``.
        """
        band = np.asarray(self._band, dtype=float).reshape(-1, 2)
        return pd.DataFrame(
            {
                "time": list(self._times),
                "days": np.asarray(self._days, dtype=float),
                "fitted": np.asarray(self.fitted, dtype=float),
                "lower": band[:, 0],
                "upper": band[:, 1],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN/inf become ``None``; nested change point; fit series)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name.startswith("_"):
                continue
            value = getattr(self, name)
            if isinstance(value, ChangePointResult):
                out[name] = value.to_dict()
            else:
                out[name] = _json_safe(value)
        out["fit"] = {
            "time": _json_safe(list(self._times)),
            "days": _json_safe(list(self._days)),
            "lower": _json_safe([b[0] for b in self._band]),
            "upper": _json_safe([b[1] for b in self._band]),
        }
        return out

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: columns ``metric``, ``quantity``, ``value``, ``ci_lower``, ``ci_upper``."""
        ttb = self.time_to_breach_ci or (None, None)
        rows = [
            ("slope_per_day", self.slope_per_day, *self.slope_ci),
            ("change_over_horizon", self.change_over_horizon, *self.change_ci),
            ("intercept", self.intercept, None, None),
            ("tau2", self.tau2, None, None),
            ("mann_kendall_tau", self.mann_kendall_tau, None, None),
            ("time_to_breach_days", self.time_to_breach_days, *ttb),
        ]
        frame = pd.DataFrame(rows, columns=["quantity", "value", "ci_lower", "ci_upper"])
        for col in ("value", "ci_lower", "ci_upper"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        frame.insert(0, "metric", self.metric)
        frame["direction"] = self.direction
        return frame

    def _repr_html_(self) -> str:
        d = self.to_dict()
        d.pop("fit", None)
        d.pop("fitted", None)
        cp = d.pop("change_point", None)
        body = _html_table(f"Trend of {self.metric or 'metric'}: {self.direction}", d)
        if cp is not None:
            body += _html_table("Change point", cp)
        return body


def _html_table(title: str, d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in d.items()
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{rows}</table></div>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return "—" if v is None else str(v)


@dataclass(frozen=True)
class _Fit:
    a: float
    b: float
    cov: np.ndarray  # covariance of (a, b)
    p_value: float
    df: float | None  # None -> normal quantiles
    method: str
    phi: float = float("nan")
    ar_variance: float = float("nan")
    tau2: float | None = None  # the fit's own white-noise variance, when it has one


def _quantile(p: float, df: float | None) -> float:
    return _stats.norm_ppf(p) if df is None else _stats.t_ppf(p, df)


def _fit_sarimax(days: np.ndarray, y: np.ndarray) -> _Fit | None:
    """Regression on time with AR(1) errors; None when the optimiser fails.

    The fit runs on standardised values and times: on the raw scale (values near 0.9 with
    a spread of 1e-3) the optimiser drifts to a unit root or fails to converge.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    ybar, sy = float(y.mean()), float(y.std())
    tbar, st = float(days.mean()), float(days.std())
    if sy == 0 or st == 0:
        return None
    ys, xs = (y - ybar) / sy, (days - tbar) / st
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = SARIMAX(ys, exog=xs, order=(1, 0, 0), trend="c").fit(disp=False)
        except (ValueError, np.linalg.LinAlgError) as exc:
            logger.info("SARIMAX fit failed: %s", exc)
            return None
    converged = bool((res.mle_retvals or {}).get("converged", True))
    if not converged or any(issubclass(w.category, ConvergenceWarning) for w in caught):
        return None
    names = list(res.param_names)
    params = np.asarray(res.params, dtype=float)
    cov_full = np.asarray(res.cov_params(), dtype=float)
    ic, ib, ip = names.index("intercept"), names.index("x1"), names.index("ar.L1")
    c, bs, phi = params[ic], params[ib], params[ip]
    if not np.all(np.isfinite(cov_full)) or abs(phi) >= 1:
        return None
    # trend="c" is the intercept of the AR(1) error equation: its mean is c / (1 - phi).
    # Back on the original scale: slope = sy * bs / st, a = ybar + sy * m - slope * tbar.
    slope = sy * bs / st
    a = ybar + sy * c / (1.0 - phi) - slope * tbar
    jac = np.zeros((2, len(params)))
    jac[0, ic] = sy / (1.0 - phi)
    jac[0, ip] = sy * c / (1.0 - phi) ** 2
    jac[0, ib] = -sy * tbar / st
    jac[1, ib] = sy / st
    cov = jac @ cov_full @ jac.T
    if not (np.isfinite(cov[1, 1]) and cov[1, 1] > 0):
        return None
    return _Fit(
        float(a), float(slope), cov, float(res.pvalues[ib]), None, _METHOD_SARIMAX, float(phi)
    )


def _fit_ar_reml(days: np.ndarray, y: np.ndarray, v: np.ndarray | None) -> _Fit | None:
    """GLS trend with a REML-fitted AR(1) wobble plus white noise; None on failure."""
    ar = fit_ar1_trend(days, y, v)
    if not (ar.converged and ar.cov[1, 1] > 0):
        return None
    cov = kenward_roger(days, v, ar)
    df = float(len(y) - 2)
    p = 2 * _stats.t_sf(abs(ar.b) / math.sqrt(cov[1, 1]), df)
    return _Fit(ar.a, ar.b, cov, p, df, _METHOD_AR, ar.phi, ar.s2, ar.tau2)


def _fieller(
    a: float, b: float, cov: np.ndarray, thr: float, q: float
) -> tuple[float, float] | None:
    """Fieller interval for the time ``(thr - a) / b``; None when unbounded."""
    d = a - thr
    qa = b * b - q * q * cov[1, 1]
    qb = 2.0 * (d * b - q * q * cov[0, 1])
    qc = d * d - q * q * cov[0, 0]
    if qa <= 0:
        return None
    disc = qb * qb - 4.0 * qa * qc
    if disc < 0:
        return None
    r = math.sqrt(disc)
    return ((-qb - r) / (2.0 * qa), (-qb + r) / (2.0 * qa))


def analyze_trend(
    times: Any,
    values: Any,
    variances: Any = None,
    *,
    higher_is_better: bool,
    tolerance: float = 0.01,
    tolerance_mode: Literal["relative", "absolute"] = "relative",
    min_samples: int = 10,
    alpha: float = 0.05,
    horizon_days: float | None = None,
    threshold: float | None = None,
    metric: str | None = None,
    method: Literal["auto", "ar1", "wls", "sarimax"] = "auto",
    weights: Any = None,
    max_points: int | None = TREND_MAX_POINTS,
) -> TrendResult:
    """Estimate the trend of a metric's history and decide its direction.

    Parameters
    ----------
    times : sequence of datetimes, pandas Timestamps or float days
        Time of each point (tz-aware datetimes are compared in UTC). Converted to days
        since the earliest point; points are sorted by time.
    values : sequence of float
        Metric value of each point. Points with a NaN value are dropped (``n_dropped``).
    variances : sequence of float, optional
        Sampling variance (``se**2``) of each point. NaN means unknown: unknown variances
        are imputed by the median of the known ones; when none is known, the fit is OLS
        and ``tau2`` is the residual variance.
    higher_is_better : bool
        Semantics of the metric: a falling accuracy degrades, a rising log loss degrades.
    tolerance : float, default 0.01
        Smallest change **per** ``horizon_days`` (30 days by default) that matters: a rate,
        so the answer does not depend on how long the history is. Relative to
        ``|mean value|`` when ``tolerance_mode="relative"`` (default: 1 % of the mean per 30
        days), in metric units when ``"absolute"``.
    tolerance_mode : {"relative", "absolute"}, default "relative"
    min_samples : int, default 10
        Fewer valid points give ``direction="insufficient_data"`` and no fit.
    alpha : float, default 0.05
        One-sided level of the slope test and of each TOST test.
    horizon_days : float, optional
        Period of the tolerance rate, 30 days by default. (It used to be the span of the
        data, so the same decline was "stable" in 30 days and "degrading" in 84.)
    threshold : float, optional
        Metric value that would trigger an alert (e.g. ``baseline * (1 - 0.05)``); enables
        time to breach.
    metric : str, optional
        Label stored in the result.
    method : {"auto", "ar1", "wls", "sarimax"}, default "auto"
        ``"ar1"``: GLS with a REML-fitted AR(1) wobble (:mod:`perfkit.analysis._trend_ar`);
        ``"wls"``: random-effects WLS, independent errors; ``"sarimax"``: statsmodels
        ``SARIMAX(1,0,0)`` with a trend (ML, normal quantiles; kept for comparisons).
        ``"auto"`` is ``"ar1"`` with at least 12 points, ``"wls"`` below. A failed AR fit
        falls back to WLS with a warning.
    weights : sequence of float, optional
        Positive weight of each point (the rows of each batch); used only when points are
        aggregated to days (equal weights when omitted).
    max_points : int or None, default :data:`TREND_MAX_POINTS` (400)
        A series with more valid points than this that covers at least
        :data:`TREND_MIN_DAYS` calendar days (UTC for tz-aware times, the integer part of
        float days) is fitted on **daily points**: the weighted mean value and time of each
        day's points, with variance ``sum(w**2 var) / sum(w)**2`` (:func:`daily_points`).
        A trend over months is a trend of days; hourly points add no information about it
        but cost an O(n) likelihood per optimiser step (and change-point scans over every
        split). ``n_points``, ``fitted`` and the band then refer to the daily points,
        ``aggregation`` is ``"daily"`` and ``warnings`` says how many points were merged.
        ``None`` fits every point. Shorter series are fitted as given.

    Returns
    -------
    TrendResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> days = np.arange(40.0)
    >>> se = np.full(40, 0.004)
    >>> acc = 0.92 - 0.001 * days + rng.normal(0, se)
    >>> res = analyze_trend(days, acc, se**2, higher_is_better=True, threshold=0.85)
    >>> res.direction, res.method
    ('degrading', 'gls_ar1_reml')
    >>> round(res.slope_per_day, 3)
    -0.001
    >>> 20 < res.time_to_breach_days < 50
    True
    >>> flat = analyze_trend(days, 0.92 + rng.normal(0, se), se**2, higher_is_better=True)
    >>> flat.direction
    'stable'
    """
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise InputTypeError(
            f"higher_is_better must be a bool, got {type(higher_is_better).__name__}",
            parameter="higher_is_better",
        )
    _validate_common(alpha, min_samples)
    if tolerance_mode not in ("relative", "absolute"):
        raise ValidationError(
            f"tolerance_mode must be 'relative' or 'absolute', got {tolerance_mode!r}",
            parameter="tolerance_mode",
        )
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValidationError(
            f"tolerance must be finite and >= 0, got {tolerance!r}", parameter="tolerance"
        )
    if method not in ("auto", "ar1", "wls", "sarimax"):
        raise ValidationError(
            f"method must be 'auto', 'ar1', 'wls' or 'sarimax', got {method!r}",
            parameter="method",
        )
    if horizon_days is not None and not (math.isfinite(horizon_days) and horizon_days > 0):
        raise ValidationError(
            f"horizon_days must be > 0, got {horizon_days!r}", parameter="horizon_days"
        )
    if threshold is not None and not math.isfinite(threshold):
        raise NonFiniteError(f"threshold must be finite, got {threshold!r}", parameter="threshold")

    if max_points is not None and (isinstance(max_points, bool) or int(max_points) != max_points
                                   or max_points < 1):
        raise ValidationError(
            f"max_points must be a positive integer or None, got {max_points!r}", parameter="max_points"
        )

    warn: list[str] = []
    days, y, v, tvals, n_dropped, w = _prepare_series(times, values, variances, warn, weights)
    aggregation = None
    if max_points is not None and len(y) > max_points:
        day = _day_numbers(days, tvals)
        n_days = int(np.count_nonzero(np.diff(day))) + 1
        if n_days >= TREND_MIN_DAYS:
            t_day, y, v, _ = daily_points(days, y, v, w, day)
            first = tvals[0]
            if isinstance(tvals, pd.DatetimeIndex):
                tvals = first + pd.to_timedelta(t_day, unit="D")
            else:
                tvals = float(first) + t_day
            msg = f"{len(days)} points fitted as {len(y)} daily points (weighted means of each day)"
            warn.append(msg)
            logger.debug("trend of %s: %s", metric, msg)
            days = t_day - t_day[0]
            aggregation = "daily"
    tlist = list(tvals)
    n = len(y)
    hib = bool(higher_is_better)
    if n < min_samples:
        logger.debug("trend of %s: %d valid points < min_samples=%d", metric, n, min_samples)
        return TrendResult(
            metric=metric,
            direction="insufficient_data",
            n_points=n,
            n_dropped=n_dropped,
            threshold=threshold,
            higher_is_better=hib,
            alpha=alpha,
            tolerance_mode=tolerance_mode,
            warnings=tuple(warn),
        )
    span = float(days.max() - days.min())
    if span <= 0:
        raise ValidationError(
            "all valid points share one time; a trend needs a time span", parameter="times"
        )

    # ---- random-effects WLS (statsmodels' OLS / WLS, acorr_ljungbox and durbin_watson,
    # computed the same way by perfkit.analysis._stats without importing statsmodels)
    X = np.column_stack([np.ones(n), days])
    if v is None:
        tau2 = _stats.wls(y, X).scale
        weights = np.ones(n)
    else:
        tau2 = _dersimonian_laird(y, X, v)
        weights = 1.0 / (v + tau2)
    wls = _stats.wls(y, X, weights)
    wresid = wls.wresid
    lags = int(min(5, max(1, n // 5)))
    lb_p = _stats.ljung_box_p(wresid, lags)
    dw = _stats.durbin_watson(wresid)
    autocorr = bool(lb_p < _LJUNG_BOX_ALPHA)

    fit = _Fit(
        float(wls.params[0]),
        float(wls.params[1]),
        wls.cov,
        float(wls.pvalues[1]),
        wls.df_resid,
        _METHOD_WLS,
    )
    use = method
    if method == "auto":
        use = "ar1" if n >= _MIN_AR_POINTS else "wls"
    if use != "wls":
        alt = _fit_ar_reml(days, y, v) if use == "ar1" else _fit_sarimax(days, y)
        if alt is None:
            msg = f"the {use} fit failed: random-effects WLS kept"
            warn.append(msg)
            logger.info("trend of %s: %s", metric, msg)
        else:
            fit = alt

    # ---- decision
    se_b = math.sqrt(fit.cov[1, 1])
    q1 = _quantile(1 - alpha, fit.df)
    q2 = _quantile(1 - alpha / 2, fit.df)
    slope_ci = (fit.b - q2 * se_b, fit.b + q2 * se_b)
    lower1, upper1 = fit.b - q1 * se_b, fit.b + q1 * se_b
    slope_bound = upper1 if fit.b < 0 else lower1
    horizon = float(horizon_days) if horizon_days is not None else _DEFAULT_HORIZON_DAYS
    change = fit.b * horizon
    change_ci = (lower1 * horizon, upper1 * horizon)
    mean_value = float(np.mean(y))
    tol = tolerance * abs(mean_value) if tolerance_mode == "relative" else float(tolerance)

    bad_sign = -1.0 if hib else 1.0  # sign of a degrading slope
    falling, rising = upper1 < 0, lower1 > 0  # one-sided 1 - alpha bound excludes 0
    degrading_sig, improving_sig = (falling, rising) if hib else (rising, falling)
    direction: Direction
    if degrading_sig and abs(change) > tol:
        direction = "degrading"
    elif improving_sig and abs(change) > tol:
        direction = "improving"
    elif -tol < change_ci[0] and change_ci[1] < tol:
        direction = "stable"
    else:
        direction = "uncertain"

    # ---- Mann-Kendall
    mk_tau, mk_p = _stats.kendall_tau(days, y)  # = scipy.stats.kendalltau
    mk_dir = "no_trend"
    if math.isfinite(mk_p) and mk_p / 2 < alpha and mk_tau != 0:
        mk_dir = "degrading" if np.sign(mk_tau) == bad_sign else "improving"
    if direction in ("degrading", "improving"):
        agrees = mk_dir == direction
    else:
        agrees = mk_dir == "no_trend"

    # ---- fitted line and band
    var_line = fit.cov[0, 0] + 2 * days * fit.cov[0, 1] + days**2 * fit.cov[1, 1]
    fitted = fit.a + fit.b * days
    half = q2 * np.sqrt(np.maximum(var_line, 0.0))
    band = tuple(zip((fitted - half).tolist(), (fitted + half).tolist(), strict=True))

    # ---- time to breach
    t_last = float(days[-1])
    ttb: float | None = None
    ttb_ci: tuple[float | None, float | None] | None = None
    breached = False
    if threshold is not None:
        at_last = fit.a + fit.b * t_last
        breached = bool(at_last <= threshold if hib else at_last >= threshold)
        if direction == "degrading" and not breached:
            ttb = (threshold - fit.a) / fit.b - t_last
            interval = _fieller(fit.a, fit.b, fit.cov, float(threshold), q2)
            if interval is None:
                ttb_ci = (None, None)
            else:
                ttb_ci = (max(0.0, interval[0] - t_last), interval[1] - t_last)

    change_point = _change_point_core(days, y, v, tlist, alpha, 2)

    logger.debug("trend of %s: %s (slope %.3g/day, %s)", metric, direction, fit.b, fit.method)
    return TrendResult(
        metric=metric,
        direction=direction,
        n_points=n,
        n_dropped=n_dropped,
        slope_per_day=fit.b,
        slope_se=se_b,
        slope_ci=slope_ci,
        slope_bound=float(slope_bound),
        p_value=fit.p_value,
        method=fit.method,
        tau2=tau2 if fit.tau2 is None else fit.tau2,
        autocorrelation_detected=autocorr,
        ljung_box_p=lb_p,
        durbin_watson=dw,
        horizon_days=horizon,
        change_over_horizon=float(change),
        change_ci=(float(change_ci[0]), float(change_ci[1])),
        tolerance=float(tol),
        tolerance_mode=tolerance_mode,
        mean_value=mean_value,
        mann_kendall_tau=mk_tau,
        mann_kendall_p=mk_p,
        mann_kendall_direction=mk_dir,
        agrees=bool(agrees),
        threshold=None if threshold is None else float(threshold),
        time_to_breach_days=None if ttb is None else float(ttb),
        time_to_breach_ci=ttb_ci,
        already_breached=breached,
        change_point=change_point,
        intercept=fit.a,
        fitted=tuple(fitted.tolist()),
        higher_is_better=hib,
        alpha=alpha,
        warnings=tuple(warn),
        ar_phi=fit.phi,
        ar_variance=fit.ar_variance,
        df=fit.df,
        aggregation=aggregation,
        _days=tuple(days.tolist()),
        _times=tuple(tlist),
        _band=band,
    )


def trend_from_frame(
    df: pd.DataFrame,
    time_col: str = "timestamp",
    value_col: str = "value",
    se_col: str | None = "se",
    **kwargs: Any,
) -> TrendResult:
    """:func:`analyze_trend` on the columns of a DataFrame.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per point.
    time_col, value_col : str
        Column names of the times and values.
    se_col : str or None, default "se"
        Column of standard errors (squared into variances); ``None`` when unknown.
    **kwargs
        Passed to :func:`analyze_trend` (``higher_is_better`` is required).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=12, tz="UTC"),
    ...                    "value": [0.9] * 12, "se": [0.01] * 12})
    >>> trend_from_frame(df, higher_is_better=True).n_points
    12
    """
    if not isinstance(df, pd.DataFrame):
        raise InputTypeError(
            f"df must be a pandas DataFrame, got {type(df).__name__}", parameter="df"
        )
    for param, col in (("time_col", time_col), ("value_col", value_col), ("se_col", se_col)):
        if col is not None and col not in df.columns:
            raise ValidationError(
                f"{param}={col!r} is not a column of df (columns: {list(df.columns)})",
                parameter=param,
            )
    variances = None if se_col is None else df[se_col].to_numpy(dtype=float) ** 2
    return analyze_trend(df[time_col], df[value_col].to_numpy(dtype=float), variances, **kwargs)


def naive_trend_direction(
    times: Any, values: Sequence[float] | np.ndarray, *, higher_is_better: bool = True
) -> str:
    """The seed's rule: the sign of an ``np.polyfit`` slope, kept for comparisons only.

    It ignores noise entirely, so a flat history is called "degrading" about half of the
    time. Use :func:`analyze_trend`.

    Examples
    --------
    >>> naive_trend_direction([0.0, 1.0, 2.0], [0.9, 0.89, 0.88])
    'degrading'
    """
    days, _ = _to_days(times)
    y = np.asarray(values, dtype=float)
    keep = ~np.isnan(y)
    if keep.sum() < 2:
        return "insufficient_data"
    slope = float(np.polyfit(days[keep], y[keep], 1)[0])
    if abs(slope) <= 1e-12 * max(1.0, float(np.abs(y[keep]).max())):
        return "stable"
    return "improving" if (slope > 0) == bool(higher_is_better) else "degrading"
