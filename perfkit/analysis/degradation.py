"""Degradation detection: is this batch (or window) credibly worse than the baseline?

A degradation counts when it is *practically* large (the configured threshold, relative to
the baseline by default) **and** *statistically* credible given the sample sizes of the
batch and the baseline, with false-discovery control across the metrics (and segments)
checked at once. Both decisions, the p-values and the smallest degradation the batch could
have detected are reported for every metric.

Tests (one-sided, H1: the current value is worse):

=====================================  ===================================================
accuracy, positive-class precision /   score test for two independent proportions
recall                                 (``statsmodels`` ``test_proportions_2indep``)
roc_auc                                independent-samples DeLong z
macro precision / recall / F1          z with multinomial-bootstrap standard errors
log loss, MSE, RMSE, MAE, MAPE, R² ...  Welch z from the stored moments (delta method)
=====================================  ===================================================

With ``gating="minimum_effect"`` (the default) the null hypothesis is "degradation <=
threshold": an alert needs evidence that the drop is larger than the threshold, which keeps
false alarms of healthy batches well under 1 % even for small batches
(``benchmarks/detection.py``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

from perfkit.alerts.types import Alert
from perfkit.config import DetectionSettings
from perfkit.exceptions import ValidationError
from perfkit.metrics import MetricReport, MetricValue, get_metric

__all__ = [
    "DegradationAnalysis",
    "MetricFinding",
    "assess",
    "build_alerts",
    "compare_metric",
    "WINDOWABLE",
    "adjust_pvalues",
    "detect_degradation",
    "replay",
    "severity_for",
    "window_report",
]

_PROPORTIONS = {"accuracy", "precision", "recall"}
_SEVERITY_RANK = {None: 0, "minor": 1, "moderate": 2, "critical": 3}


def _f(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class MetricFinding:
    """The comparison of one metric with its baseline.

    ``degradation`` is positive when the metric got worse (relative to the baseline in
    ``relative`` mode, in the metric's units in ``absolute`` mode), whatever its direction.
    """

    metric: str
    higher_is_better: bool
    baseline: float
    current: float
    ci_lower: float
    ci_upper: float
    relative_change: float
    degradation: float
    threshold: float
    practical: bool
    test: str
    statistic: float
    p_value: float
    adjusted_p_value: float = math.nan
    significant: bool = False
    degraded: bool = False
    severity: str | None = None
    min_detectable_degradation: float = math.nan
    reason: str | None = None
    segment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for k, v in self.__dict__.items():
            out[k] = _f(v) if isinstance(v, float) else v
        return out


@dataclass(frozen=True)
class DegradationAnalysis(Mapping[str, Any]):
    """Result of comparing a batch (or window) with the baseline.

    Dict-style access gives the seed's keys: ``degradation_detected``, ``findings``
    (``{metric: finding dict}``), ``alerts`` (list of alert dicts), ``max_degradation``,
    ``retraining_recommended``.
    """

    degradation_detected: bool
    findings: tuple[MetricFinding, ...]
    alerts: tuple[Alert, ...] = ()
    retraining_recommended: bool = False
    performance_score: float = math.nan
    low_performance: bool = False
    settings: DetectionSettings = field(default_factory=DetectionSettings)
    baseline_version: int | None = None
    window_findings: tuple[MetricFinding, ...] = ()

    @property
    def max_degradation(self) -> float:
        vals = [f.degradation for f in self.findings if f.degraded]
        return max(vals) if vals else 0.0

    @property
    def degraded_metrics(self) -> list[str]:
        return [f.metric for f in (*self.findings, *self.window_findings) if f.degraded]

    def finding(self, metric: str) -> MetricFinding:
        for f in self.findings:
            if f.metric == metric:
                return f
        raise KeyError(metric)

    def _as_dict(self) -> dict[str, Any]:
        return {
            "degradation_detected": self.degradation_detected,
            "degraded_metrics": self.degraded_metrics,
            "max_degradation": self.max_degradation,
            "retraining_recommended": self.retraining_recommended,
            "low_performance": self.low_performance,
            "performance_score": _f(self.performance_score),
            "findings": {
                f.metric if f.segment is None else f"{f.segment}/{f.metric}": f.to_dict()
                for f in self.findings
            },
            "alerts": [a.to_dict() for a in self.alerts],
            "gating": self.settings.gating,
            "alpha": self.settings.alpha,
            "fdr_method": self.settings.fdr_method,
            "baseline_version": self.baseline_version,
            "window_findings": {f.metric: f.to_dict() for f in self.window_findings},
        }

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())

    def to_dict(self) -> dict[str, Any]:
        return self._as_dict()

    def to_frame(self):
        """Tidy frame: one row per metric finding."""
        import pandas as pd

        return pd.DataFrame([f.to_dict() for f in self.findings])


def severity_for(degradation: float, threshold: float, bands: Mapping[str, float]) -> str | None:
    """Severity of a degradation: minor (threshold..moderate), moderate, critical.

    Examples
    --------
    >>> bands = {"moderate": 0.10, "critical": 0.20}
    >>> [severity_for(d, 0.05, bands) for d in (0.03, 0.07, 0.15, 0.25)]
    [None, 'minor', 'moderate', 'critical']
    """
    if not math.isfinite(degradation) or degradation < threshold:
        return None
    if degradation >= bands["critical"]:
        return "critical"
    if degradation >= bands["moderate"]:
        return "moderate"
    return "minor"


def _z_p(z: float) -> float:
    return float(stats.norm.sf(z)) if math.isfinite(z) else math.nan


_TEST_NAMES = {"roc_auc": "delong_z", "f1_macro": "bootstrap_z", "precision_macro": "bootstrap_z",
               "recall_macro": "bootstrap_z", "f1": "bootstrap_z"}


def _metric_arrays(
    name: str,
    baseline: MetricValue,
    value: np.ndarray,
    se: np.ndarray,
    successes: np.ndarray | None,
    trials: np.ndarray | None,
    threshold: float,
    settings: DetectionSettings,
) -> dict[str, np.ndarray]:
    """Vectorized comparison of one metric over many batches with the baseline.

    This is the single implementation of the per-metric decision: the tracker calls it with
    one batch, the threshold explorer replays a whole history through it.
    """
    hib = bool(get_metric(name).higher_is_better)
    b = float(baseline.value)
    c = np.asarray(value, dtype=float)
    n = c.shape[0]
    nan = np.full(n, np.nan)
    if not math.isfinite(b) or (settings.threshold_mode == "relative" and b == 0):
        reason = "baseline_is_zero" if math.isfinite(b) else f"undefined:baseline_{baseline.reason}"
        return {"degradation": nan, "relative_change": nan, "practical": np.zeros(n, bool), "z": nan,
                "p": nan, "mdd": nan, "test": "none", "reason": np.full(n, reason, dtype=object)}
    worse = (b - c) if hib else (c - b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_change = (c - b) / abs(b) if b != 0 else nan
    relative = settings.threshold_mode == "relative"
    degradation = worse / abs(b) if relative else worse
    margin = threshold * abs(b) if relative else threshold
    null_margin = margin if settings.gating == "minimum_effect" else 0.0
    se_b = float(baseline.se)
    se_d = np.sqrt(np.asarray(se, dtype=float) ** 2 + se_b**2) if math.isfinite(se_b) else nan.copy()
    test = _TEST_NAMES.get(name, "welch_z")
    use_prop = (
        name in _PROPORTIONS and successes is not None and trials is not None
        and baseline.successes is not None and baseline.trials
    )
    if use_prop:
        test = "proportions_score"
        p, z = _proportions_vec(np.asarray(successes, float), np.asarray(trials, float),
                                float(baseline.successes), float(baseline.trials), hib, null_margin)
        pb = b
        with np.errstate(invalid="ignore", divide="ignore"):
            se_d = np.sqrt(np.maximum(c * (1 - c), 1e-12) / np.asarray(trials, float)
                           + max(pb * (1 - pb), 1e-12) / float(baseline.trials))
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(se_d > 0, (worse - null_margin) / se_d, np.nan)
        p = stats.norm.sf(z)
    reason = np.where(np.isfinite(c), np.where(np.isfinite(p), None, "no_standard_error"), "undefined_current")
    z_a = stats.norm.isf(settings.alpha)
    z_b = stats.norm.isf(0.2)
    scale = abs(b) if relative else 1.0
    extra = (z_a + z_b) * se_d / scale
    mdd = (null_margin / scale + extra) if settings.gating == "minimum_effect" else np.maximum(threshold, extra)
    return {"degradation": degradation, "relative_change": rel_change,
            "practical": np.isfinite(degradation) & (degradation >= threshold), "z": z, "p": p, "mdd": mdd,
            "test": test, "reason": reason}


def _proportions_vec(c1, n1, c2, n2, hib: bool, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided score test (Miettinen-Nurminen) of p_current vs p_baseline with a margin."""
    from statsmodels.stats.proportion import test_proportions_2indep

    value, alternative = (-margin, "smaller") if hib else (margin, "larger")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            res = test_proportions_2indep(c1, n1, c2, n2, value=value, method="score", compare="diff",
                                          alternative=alternative)
            p = np.atleast_1d(np.asarray(res.pvalue, dtype=float)).copy()
            z = np.atleast_1d(np.asarray(res.statistic, dtype=float)).copy()
        except (ValueError, ZeroDivisionError, FloatingPointError):
            p = np.full(np.shape(c1), np.nan)
            z = p.copy()
    bad = ~np.isfinite(p)
    if bad.any():
        # degenerate proportions (0 or 1 on both sides): Wald with a variance floor
        p1, p2 = c1 / n1, c2 / n2
        se = np.sqrt(np.maximum(p1 * (1 - p1), 0.25 / n1) / n1 + max(p2 * (1 - p2), 0.25 / n2) / n2)
        worse = (p2 - p1) if hib else (p1 - p2)
        zz = (worse - margin) / se
        z = np.where(bad, zz, z)
        p = np.where(bad, stats.norm.sf(zz), p)
    return p, z


def adjust_pvalues(P: np.ndarray, method: str) -> np.ndarray:
    """Adjust each row of a (batches x tests) p-value matrix as one family (NaN = not tested).

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
                cm = np.array([np.sum(1.0 / np.arange(1, int(k) + 1)) if k > 0 else 1.0 for k in m[:, 0]])[:, None]
                adj = adj * cm
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


#: Metrics whose value over a window of batches follows exactly from the stored batch values
#: (proportions from their counts, means from count / mean / standard error).
WINDOW_PROPORTIONS = frozenset({"accuracy", "precision", "recall"})
WINDOW_MEANS = frozenset({"mse", "mae", "log_loss", "mape", "smape"})
WINDOWABLE = WINDOW_PROPORTIONS | WINDOW_MEANS


def _window_sums(metric: str, n, value, se, successes, trials) -> tuple:
    """Per-batch additive pieces of a window value (arrays or scalars)."""
    if metric in WINDOW_PROPORTIONS:
        return (successes, trials)
    n = np.asarray(n, dtype=float)
    var = np.asarray(se, dtype=float) ** 2 * n  # se = sqrt(var / n), var with ddof = 1
    return (n, n * value, (n - 1) * var + n * np.asarray(value, dtype=float) ** 2)


def _window_from_sums(metric: str, sums: tuple) -> tuple:
    """(value, se, successes, trials) of a window from summed :func:`_window_sums`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric in WINDOW_PROPORTIONS:
            S, T = (np.asarray(x, dtype=float) for x in sums)
            v = S / T
            return v, np.sqrt(v * (1 - v) / T), S, T
        A, Bs, C = (np.asarray(x, dtype=float) for x in sums)
        mean = Bs / A
        var = (C - A * mean * mean) / (A - 1)
        return mean, np.sqrt(np.maximum(var, 0.0) / A), None, None


def window_report(entries: Sequence[Mapping[str, Mapping[str, Any]]], metrics: Sequence[str]) -> dict[str, MetricValue]:
    """Metric values of a window of batches from their stored metric dicts (windowable metrics only).

    Examples
    --------
    >>> a = {"accuracy": {"value": 0.8, "successes": 80, "trials": 100, "n": 100}}
    >>> b = {"accuracy": {"value": 0.9, "successes": 90, "trials": 100, "n": 100}}
    >>> round(window_report([a, b], ["accuracy"])["accuracy"].value, 3)
    0.85
    """
    out: dict[str, MetricValue] = {}
    for m in metrics:
        if m not in WINDOWABLE or not all(m in e for e in entries):
            continue
        parts = []
        for e in entries:
            d = e[m]
            if d.get("value") is None or (m in WINDOW_PROPORTIONS and d.get("trials") is None) or \
                    (m in WINDOW_MEANS and (d.get("se") is None or not d.get("n"))):
                break
            parts.append(_window_sums(m, d.get("n"), d["value"], d.get("se"), d.get("successes"), d.get("trials")))
        else:
            sums = tuple(float(np.sum([p[i] for p in parts])) for i in range(len(parts[0])))
            v, se, succ, trials = _window_from_sums(m, sums)
            out[m] = MetricValue(m, float(v), se=float(se), n=int(sums[-1] if succ is not None else sums[0]),
                                 successes=None if succ is None else float(succ),
                                 trials=None if trials is None else float(trials), method="window")
    return out


def compare_metric(
    current: MetricValue,
    baseline: MetricValue,
    threshold: float,
    settings: DetectionSettings,
) -> MetricFinding:
    """Compare one metric of the current batch with the baseline (before FDR control)."""
    name = current.name
    hib = bool(get_metric(name).higher_is_better)
    arr = _metric_arrays(
        name, baseline, np.array([current.value]), np.array([current.se]),
        None if current.successes is None else np.array([current.successes]),
        None if current.trials is None else np.array([current.trials]),
        threshold, settings,
    )
    reason = arr["reason"][0]
    if not math.isfinite(current.value):
        reason = f"undefined:{current.reason}"
    return MetricFinding(
        metric=name, higher_is_better=hib, baseline=float(baseline.value), current=float(current.value),
        ci_lower=current.ci_lower, ci_upper=current.ci_upper, threshold=threshold,
        relative_change=float(arr["relative_change"][0]), degradation=float(arr["degradation"][0]),
        practical=bool(arr["practical"][0]), test=arr["test"] if math.isfinite(current.value) else "none",
        statistic=float(arr["z"][0]), p_value=float(arr["p"][0]),
        min_detectable_degradation=float(arr["mdd"][0]), reason=reason,
    )


def _adjust(pvalues: Sequence[float], settings: DetectionSettings) -> list[float]:
    return adjust_pvalues(np.asarray([pvalues], dtype=float), settings.fdr_method)[0].tolist() if len(pvalues) else []


def _decide(practical: np.ndarray, adjusted: np.ndarray, settings: DetectionSettings) -> np.ndarray:
    significant = np.isfinite(adjusted) & (adjusted < settings.alpha)
    return practical if settings.gating == "none" else practical & significant


def detect_degradation(
    current: MetricReport | Mapping[str, MetricValue] | Sequence[tuple[str | None, Mapping, Mapping]],
    baseline: MetricReport | Mapping[str, MetricValue] | None = None,
    settings: DetectionSettings | None = None,
    *,
    metrics: Sequence[str] | None = None,
) -> list[MetricFinding]:
    """Per-metric findings, with false-discovery control across everything checked at once.

    Parameters
    ----------
    current, baseline : MetricReport
        Metric values of the batch (or merged window) and of the baseline. To check several
        segments together (one FDR family), pass ``current`` as a list of
        ``(segment, current_report, baseline_report)`` and leave ``baseline`` as None.
    settings : DetectionSettings
    metrics : sequence of str, optional
        Restrict to these metrics (default: those with a threshold).

    Examples
    --------
    >>> from perfkit.metrics import compute_metrics
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 5000)
    >>> good = compute_metrics(y, np.where(rng.random(5000) < 0.9, y, 1 - y))
    >>> bad = compute_metrics(y, np.where(rng.random(5000) < 0.7, y, 1 - y))
    >>> s = DetectionSettings(thresholds={"accuracy": 0.05})
    >>> f = detect_degradation(bad, good, s)[0]
    >>> f.degraded, f.severity
    (True, 'critical')
    """
    settings = settings or DetectionSettings()
    if baseline is None:
        groups = list(current)  # type: ignore[arg-type]
    else:
        groups = [(None, current, baseline)]
    findings: list[MetricFinding] = []
    for segment, cur, base in groups:
        names = list(metrics) if metrics is not None else list(settings.thresholds)
        for name in names:
            if name not in settings.thresholds:
                raise ValidationError(f"no threshold configured for metric {name!r}", parameter="metrics")
            if name not in cur or name not in base:
                continue
            f = compare_metric(cur[name], base[name], settings.thresholds[name], settings)
            if segment is not None:
                f = MetricFinding(**{**f.__dict__, "segment": segment})
            findings.append(f)
    # the FDR family: the metrics whose point estimate reaches their threshold (the others
    # cannot alert, and with the minimum-effect null their p-values are >= 0.5 anyway)
    adjusted = np.asarray(_adjust([f.p_value if f.practical else math.nan for f in findings], settings),
                          dtype=float)
    degraded = _decide(np.array([f.practical for f in findings], bool), adjusted, settings) if findings else []
    out = []
    for f, adj, deg in zip(findings, adjusted, degraded, strict=True):
        sev = severity_for(f.degradation, f.threshold, settings.severity_bands) if deg else None
        out.append(MetricFinding(**{**f.__dict__, "adjusted_p_value": float(adj),
                                    "significant": bool(math.isfinite(adj) and adj < settings.alpha),
                                    "degraded": bool(deg), "severity": sev}))
    return out


def replay(
    history: Any,
    baseline: MetricReport | Mapping[str, MetricValue],
    settings: DetectionSettings,
    *,
    metrics: Sequence[str] | None = None,
    cooldown_hours: float = 24.0,
    model: str = "model",
) -> Any:
    """Which alerts would have fired over a stored history under ``settings``.

    The same per-metric tests, false-discovery control, severity bands and cooldown rule as
    the tracker, vectorized over the batches (a year of hourly batches in well under a second).

    Parameters
    ----------
    history : DataFrame
        ``Store.history()`` output (columns ``timestamp``, ``batch_id``, ``segment``,
        ``performance_score`` and per metric ``M``, ``M_se``, optionally ``M_successes`` /
        ``M_trials``), or a list of :class:`perfkit.store.BatchRecord`.
    baseline : MetricReport
    settings : DetectionSettings
    metrics : sequence of str, optional
        Metrics to check (default: those with a threshold present in the history).
    cooldown_hours : float

    Returns
    -------
    DataFrame
        One row per alert that would be raised: timestamp, batch_id, segment, metric,
        alert_type, severity, value, baseline, degradation, p_value, adjusted_p_value, status
        (``"fires"`` or ``"suppressed"``) and suppressed_by (row index of the alert that
        suppresses it).
    """
    import pandas as pd

    frame = _history_frame(history)
    cols = ["timestamp", "batch_id", "segment", "metric", "alert_type", "severity", "value", "baseline",
            "degradation", "p_value", "adjusted_p_value", "status", "suppressed_by"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    names = [m for m in (metrics or settings.thresholds) if m in settings.thresholds and m in frame.columns
             and m in baseline]
    B = len(frame)
    P = np.full((B, len(names)), np.nan)
    D = np.full((B, len(names)), np.nan)
    PR = np.zeros((B, len(names)), bool)
    for j, m in enumerate(names):
        succ = frame[f"{m}_successes"].to_numpy(float) if f"{m}_successes" in frame else None
        trials = frame[f"{m}_trials"].to_numpy(float) if f"{m}_trials" in frame else None
        arr = _metric_arrays(m, baseline[m], frame[m].to_numpy(float), frame[f"{m}_se"].to_numpy(float)
                             if f"{m}_se" in frame else np.full(B, np.nan), succ, trials,
                             settings.thresholds[m], settings)
        P[:, j], D[:, j], PR[:, j] = arr["p"], arr["degradation"], arr["practical"]
    ADJ = adjust_pvalues(np.where(PR, P, np.nan), settings.fdr_method) if names else P
    DEG = _decide(PR, ADJ, settings) if names else PR
    checked = frame["_checked"].to_numpy(bool) if "_checked" in frame else np.ones(B, bool)
    DEG = DEG & checked[:, None]
    bands = settings.severity_bands
    sev = np.where(D >= bands["critical"], "critical", np.where(D >= bands["moderate"], "moderate", "minor"))
    ts = pd.to_datetime(frame["timestamp"], utc=True).reset_index(drop=True)
    seg = (frame["segment"] if "segment" in frame else pd.Series([None] * B)).to_numpy(object)
    bid = (frame["batch_id"] if "batch_id" in frame else pd.Series(range(B))).to_numpy(object)
    V = frame[names].to_numpy(float) if names else np.empty((B, 0))
    base = np.array([float(baseline[m].value) for m in names], float)
    name_arr = np.array(names, dtype=object)

    def block(i, j, alert_type, severity, value, base_v, deg, p, adj):
        return pd.DataFrame({"timestamp": ts.iloc[i].reset_index(drop=True), "batch_id": bid[i], "segment": seg[i],
                             "metric": j, "alert_type": alert_type, "severity": severity, "value": value,
                             "baseline": base_v, "degradation": deg, "p_value": p, "adjusted_p_value": adj})

    bi, mj = np.nonzero(DEG)
    parts = [block(bi, name_arr[mj], "performance_degradation", sev[bi, mj], V[bi, mj], base[mj],
                   D[bi, mj], P[bi, mj], ADJ[bi, mj])]
    if "performance_score" in frame:
        score = frame["performance_score"].to_numpy(float)
        li = np.nonzero(np.isfinite(score) & (score < settings.low_performance_threshold) & checked)[0]
        nan = np.full(len(li), np.nan)
        parts.append(block(li, np.full(len(li), None, object), "low_performance", "critical", score[li],
                           settings.low_performance_threshold, nan, nan, nan))
    if names:
        Dd = np.where(DEG, D, -np.inf)
        worst = Dd.argmax(axis=1)
        wval = Dd[np.arange(B), worst]
        ri = np.nonzero(wval >= settings.auto_retraining_threshold)[0]
        rj = worst[ri]
        parts.append(block(ri, name_arr[rj], "retraining_trigger", sev[ri, rj], V[ri, rj], base[rj],
                           D[ri, rj], P[ri, rj], ADJ[ri, rj]))
    k = int(getattr(settings, "window_batches", 1) or 1)
    wnames = [m for m in names if m in WINDOWABLE]
    if k > 1 and wnames:
        key = pd.Series(seg, dtype=object).map(lambda x: ("s", x))
        pos = key.groupby(key, sort=False).cumcount().to_numpy()
        has = pos >= k - 1
        PW = np.full((B, len(wnames)), np.nan)
        DW = np.full((B, len(wnames)), np.nan)
        PRW = np.zeros((B, len(wnames)), bool)
        VW = np.full((B, len(wnames)), np.nan)
        for j, m in enumerate(wnames):
            col = lambda c: frame[c].to_numpy(float) if c in frame else np.full(B, np.nan)  # noqa: E731
            pieces = _window_sums(m, col(f"{m}_n"), col(m), col(f"{m}_se"), col(f"{m}_successes"),
                                  col(f"{m}_trials"))
            rolled = tuple(pd.Series(x).groupby(key.to_numpy(), sort=False).rolling(k, min_periods=k).sum()
                           .reset_index(level=0, drop=True).sort_index().to_numpy() for x in pieces)
            v, se_w, succ_w, trials_w = _window_from_sums(m, rolled)
            arr = _metric_arrays(m, baseline[m], v, se_w, succ_w, trials_w, settings.thresholds[m], settings)
            PW[:, j], DW[:, j], PRW[:, j], VW[:, j] = arr["p"], arr["degradation"], arr["practical"], v
        PRW &= has[:, None]
        ADJW = adjust_pvalues(np.where(PRW, PW, np.nan), settings.fdr_method)
        single = {m: DEG[:, names.index(m)] for m in wnames}
        DEGW = (_decide(PRW, ADJW, settings) & ~np.column_stack([single[m] for m in wnames])
                & np.column_stack([PR[:, names.index(m)] for m in wnames]))
        if "_checked" in frame:
            DEGW &= frame["_checked"].to_numpy(bool)[:, None]
        sevw = np.where(DW >= bands["critical"], "critical", np.where(DW >= bands["moderate"], "moderate", "minor"))
        wi, wj = np.nonzero(DEGW)
        basew = np.array([float(baseline[m].value) for m in wnames], float)
        parts.append(block(wi, np.array(wnames, dtype=object)[wj], "performance_degradation", sevw[wi, wj],
                           VW[wi, wj], basew[wj], DW[wi, wj], PW[wi, wj], ADJW[wi, wj]))
    parts = [p for p in parts if len(p)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols[:-2])
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    status, by = _cooldown(out, cooldown_hours)
    out["status"] = status
    out["suppressed_by"] = by
    return out


def _cooldown(alerts: Any, cooldown_hours: float) -> tuple[list[str], list[Any]]:
    """The tracker's cooldown rule: suppressed unless no delivered alert of the same key within
    the cooldown, or an escalation to a higher severity."""
    import pandas as pd

    window = np.timedelta64(int(round(cooldown_hours * 3600e9)), "ns")
    t = pd.to_datetime(alerts["timestamp"], utc=True).to_numpy("datetime64[ns]") if len(alerts) else []
    last = {}
    status, by = [], []
    rank = _SEVERITY_RANK
    for k, (tk, s, m, a, sv) in enumerate(zip(t, alerts["segment"].tolist(), alerts["metric"].tolist(),
                                               alerts["alert_type"].tolist(), alerts["severity"].tolist(), strict=True)):
        key = (s, m, a)
        prev = last.get(key)
        if prev is not None and tk - prev[0] <= window and rank[sv] <= rank[prev[1]]:
            status.append("suppressed")
            by.append(prev[2])
            continue
        status.append("fires")
        by.append(None)
        last[key] = (tk, sv, k)
    return status, by


def _history_frame(history: Any) -> Any:
    import pandas as pd

    if isinstance(history, pd.DataFrame):
        return history.sort_values("timestamp", kind="stable").reset_index(drop=True)
    rows = []
    for r in history:
        if r.labels_pending:
            continue
        row = {"timestamp": r.timestamp, "batch_id": r.batch_id, "segment": r.segment,
               "performance_score": r.performance_score if r.performance_score is not None else np.nan}
        for m, v in r.metrics.items():
            row[m] = np.nan if v.get("value") is None else v["value"]
            row[f"{m}_se"] = np.nan if v.get("se") is None else v["se"]
            row[f"{m}_n"] = np.nan if v.get("n") is None else v["n"]
            if v.get("successes") is not None:
                row[f"{m}_successes"] = v["successes"]
                row[f"{m}_trials"] = v["trials"]
        rows.append(row)
    return pd.DataFrame(rows).sort_values("timestamp", kind="stable").reset_index(drop=True) if rows else pd.DataFrame()


def build_alerts(
    findings: Sequence[MetricFinding],
    settings: DetectionSettings,
    *,
    model: str,
    timestamp: datetime,
    segment: str | None = None,
    batch_id: str | None = None,
    model_version: str | None = None,
    performance_score: float = math.nan,
    metadata: Mapping[str, Any] | None = None,
) -> list[Alert]:
    """Alerts raised by the findings: one per degraded metric, low performance, retraining."""
    alerts: list[Alert] = []
    common = dict(timestamp=timestamp, batch_id=batch_id, model_version=model_version,
                  metadata=dict(metadata or {}))

    def from_finding(f: MetricFinding, alert_type: str, message: str = "") -> Alert:
        return Alert(
            model=model, segment=f.segment if f.segment is not None else segment, metric=f.metric,
            alert_type=alert_type, severity=f.severity, baseline=f.baseline, current=f.current,
            ci_lower=f.ci_lower, ci_upper=f.ci_upper, relative_change=f.relative_change,
            p_value=f.p_value, adjusted_p_value=f.adjusted_p_value, message=message, **common,
        )

    alerts.extend(from_finding(f, "performance_degradation") for f in findings if f.degraded)
    if math.isfinite(performance_score) and performance_score < settings.low_performance_threshold:
        alerts.append(
            Alert(
                model=model, segment=segment, metric=None, alert_type="low_performance",
                severity="critical", baseline=settings.low_performance_threshold,
                current=performance_score,
                message=(f"performance score {performance_score:.3f} is below "
                         f"{settings.low_performance_threshold:g}"),
                **common,
            )
        )
    worst = max((f for f in findings if f.degraded), key=lambda f: f.degradation, default=None)
    if worst is not None and worst.degradation >= settings.auto_retraining_threshold:
        alerts.append(from_finding(
            worst, "retraining_trigger",
            f"{worst.metric} degraded by {worst.degradation:.1%}, beyond the "
            f"auto-retraining threshold {settings.auto_retraining_threshold:.0%}",
        ))
    return alerts


def assess(
    current: MetricReport,
    baseline: MetricReport,
    settings: DetectionSettings,
    *,
    model: str,
    timestamp: datetime,
    segment: str | None = None,
    batch_id: str | None = None,
    model_version: str | None = None,
    performance_score: float = math.nan,
    metadata: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    baseline_version: int | None = None,
    window_entries: Sequence[Mapping[str, Mapping[str, Any]]] | None = None,
) -> DegradationAnalysis:
    """Findings and alerts for one batch or window (what the tracker stores and delivers).

    ``window_entries``: stored metric dicts of the last batches including this one; the
    window's windowable metrics are checked too and alert when the batch alone did not.
    """
    names = [m for m in (metrics or settings.thresholds) if m in settings.thresholds]
    findings = detect_degradation(current, baseline, settings, metrics=names)
    alerts = build_alerts(
        findings,
        settings,
        model=model,
        timestamp=timestamp,
        segment=segment,
        batch_id=batch_id,
        model_version=model_version,
        performance_score=performance_score,
        metadata=metadata,
    )
    window: list[MetricFinding] = []
    if window_entries:
        single = {f.metric for f in findings if f.degraded}
        # the window only confirms what this batch shows: its own point estimate must be
        # beyond the threshold (a healthy batch after a bad one raises nothing)
        looks_worse = {f.metric for f in findings if f.practical}
        wrep = window_report(window_entries, [m for m in names if m in WINDOWABLE and m in baseline])
        if wrep:
            window = detect_degradation(wrep, baseline, settings, metrics=list(wrep))
            extra = [f for f in window if f.degraded and f.metric not in single and f.metric in looks_worse]
            alerts += [a for a in build_alerts(
                extra, settings, model=model, timestamp=timestamp, segment=segment, batch_id=batch_id,
                model_version=model_version,
                metadata={**dict(metadata or {}), "window_batches": len(window_entries)},
            ) if a.alert_type == "performance_degradation"]
    low = any(a.alert_type == "low_performance" for a in alerts)
    return DegradationAnalysis(
        degradation_detected=any(f.degraded for f in (*findings, *window)) or low,
        window_findings=tuple(window),
        findings=tuple(findings),
        alerts=tuple(alerts),
        retraining_recommended=any(a.alert_type == "retraining_trigger" for a in alerts),
        performance_score=performance_score,
        low_performance=low,
        settings=settings,
        baseline_version=baseline_version,
    )
