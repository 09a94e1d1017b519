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
    "detect_degradation",
    "severity_for",
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

    @property
    def max_degradation(self) -> float:
        vals = [f.degradation for f in self.findings if f.degraded]
        return max(vals) if vals else 0.0

    @property
    def degraded_metrics(self) -> list[str]:
        return [f.metric for f in self.findings if f.degraded]

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


def compare_metric(
    current: MetricValue,
    baseline: MetricValue,
    threshold: float,
    settings: DetectionSettings,
) -> MetricFinding:
    """Compare one metric of the current batch with the baseline (before FDR control)."""
    name = current.name
    hib = bool(get_metric(name).higher_is_better)
    b, c = float(baseline.value), float(current.value)
    base = dict(
        metric=name,
        higher_is_better=hib,
        baseline=b,
        current=c,
        ci_lower=current.ci_lower,
        ci_upper=current.ci_upper,
        threshold=threshold,
    )
    if not (math.isfinite(b) and math.isfinite(c)):
        why = current.reason if not math.isfinite(c) else f"baseline_{baseline.reason}"
        return MetricFinding(
            **base,
            relative_change=math.nan,
            degradation=math.nan,
            practical=False,
            test="none",
            statistic=math.nan,
            p_value=math.nan,
            reason=f"undefined:{why}",
        )
    worse = (b - c) if hib else (c - b)  # in metric units, positive = worse
    rel_change = (c - b) / abs(b) if b != 0 else math.nan
    relative = settings.threshold_mode == "relative"
    if relative:
        if b == 0:
            return MetricFinding(
                **base,
                relative_change=math.nan,
                degradation=math.nan,
                practical=False,
                test="none",
                statistic=math.nan,
                p_value=math.nan,
                reason="baseline_is_zero",
            )
        degradation = worse / abs(b)
        margin = threshold * abs(b)
    else:
        degradation = worse
        margin = threshold
    practical = degradation >= threshold
    null_margin = margin if settings.gating == "minimum_effect" else 0.0

    se_d = (
        math.hypot(current.se, baseline.se)
        if math.isfinite(current.se) and math.isfinite(baseline.se)
        else math.nan
    )
    test = "z"
    z = math.nan
    p = math.nan
    reason = None
    if name in _PROPORTIONS and current.trials and baseline.trials:
        test = "proportions_score"
        p, z = _proportions_test(current, baseline, hib, null_margin)
    elif math.isfinite(se_d) and se_d > 0:
        test = {
            "roc_auc": "delong_z",
            "f1_macro": "bootstrap_z",
            "precision_macro": "bootstrap_z",
            "recall_macro": "bootstrap_z",
            "f1": "bootstrap_z",
        }.get(name, "welch_z")
        z = (worse - null_margin) / se_d
        p = _z_p(z)
    else:
        reason = "no_standard_error"
    if not math.isfinite(se_d) and name in _PROPORTIONS:
        se_d = math.hypot(
            math.sqrt(max(c * (1 - c), 1e-12) / max(current.trials or 1, 1)),
            math.sqrt(max(b * (1 - b), 1e-12) / max(baseline.trials or 1, 1)),
        )
    z_a = stats.norm.isf(settings.alpha)
    z_b = stats.norm.isf(0.2)
    if math.isfinite(se_d):
        extra = (z_a + z_b) * se_d
        scale = abs(b) if relative else 1.0
        mdd = (
            (null_margin + extra) / scale
            if settings.gating == "minimum_effect"
            else max(threshold, extra / scale)
        )
    else:
        mdd = math.nan
    return MetricFinding(
        **base,
        relative_change=rel_change,
        degradation=degradation,
        practical=practical,
        test=test,
        statistic=z,
        p_value=p,
        min_detectable_degradation=mdd,
        reason=reason,
    )


def _proportions_test(
    current: MetricValue, baseline: MetricValue, hib: bool, margin: float
) -> tuple[float, float]:
    from statsmodels.stats.proportion import test_proportions_2indep

    c1, n1 = float(current.successes), float(current.trials)
    c2, n2 = float(baseline.successes), float(baseline.trials)
    if hib:  # H1: p_current - p_baseline < -margin
        value, alternative = -margin, "smaller"
    else:
        value, alternative = margin, "larger"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            res = test_proportions_2indep(
                c1, n1, c2, n2, value=value, method="score", compare="diff", alternative=alternative
            )
            p, z = float(res.pvalue), float(res.statistic)
        except (ValueError, ZeroDivisionError, FloatingPointError):
            p, z = math.nan, math.nan
    if not math.isfinite(p):
        # degenerate proportions (0 or 1 on both sides): Wald with a continuity floor
        p1, p2 = c1 / n1, c2 / n2
        se = math.sqrt(max(p1 * (1 - p1), 0.25 / n1) / n1 + max(p2 * (1 - p2), 0.25 / n2) / n2)
        worse = (p2 - p1) if hib else (p1 - p2)
        z = (worse - margin) / se
        p = _z_p(z)
    return p, z


def _adjust(pvalues: Sequence[float], settings: DetectionSettings) -> list[float]:
    pv = np.asarray(pvalues, dtype=float)
    out = pv.copy()
    ok = np.isfinite(pv)
    if settings.fdr_method != "none" and ok.sum() > 1:
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(pv[ok], alpha=settings.alpha, method=settings.fdr_method)[1]
    return out.tolist()


def detect_degradation(
    current: MetricReport
    | Mapping[str, MetricValue]
    | Sequence[tuple[str | None, Mapping, Mapping]],
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
    >>> import numpy as np
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
                raise ValidationError(
                    f"no threshold configured for metric {name!r}", parameter="metrics"
                )
            if name not in cur or name not in base:
                continue
            f = compare_metric(cur[name], base[name], settings.thresholds[name], settings)
            if segment is not None:
                f = MetricFinding(**{**f.__dict__, "segment": segment})
            findings.append(f)
    adjusted = _adjust([f.p_value for f in findings], settings)
    out = []
    for f, adj in zip(findings, adjusted, strict=True):
        significant = math.isfinite(adj) and adj < settings.alpha
        if settings.gating == "none":
            degraded = f.practical
        else:
            degraded = f.practical and significant
        sev = (
            severity_for(f.degradation, f.threshold, settings.severity_bands) if degraded else None
        )
        out.append(
            MetricFinding(
                **{
                    **f.__dict__,
                    "adjusted_p_value": adj,
                    "significant": significant,
                    "degraded": degraded,
                    "severity": sev,
                }
            )
        )
    return out


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
    meta = dict(metadata or {})
    for f in findings:
        if not f.degraded:
            continue
        alerts.append(
            Alert(
                model=model,
                segment=f.segment if f.segment is not None else segment,
                metric=f.metric,
                alert_type="performance_degradation",
                severity=f.severity,
                baseline=f.baseline,
                current=f.current,
                ci_lower=f.ci_lower,
                ci_upper=f.ci_upper,
                relative_change=f.relative_change,
                p_value=f.p_value,
                adjusted_p_value=f.adjusted_p_value,
                timestamp=timestamp,
                batch_id=batch_id,
                model_version=model_version,
                metadata=meta,
            )
        )
    if math.isfinite(performance_score) and performance_score < settings.low_performance_threshold:
        alerts.append(
            Alert(
                model=model,
                segment=segment,
                metric=None,
                alert_type="low_performance",
                severity="critical",
                baseline=settings.low_performance_threshold,
                current=performance_score,
                timestamp=timestamp,
                batch_id=batch_id,
                model_version=model_version,
                metadata=meta,
                message=(
                    f"performance score {performance_score:.3f} is below "
                    f"{settings.low_performance_threshold:g}"
                ),
            )
        )
    worst = max((f for f in findings if f.degraded), key=lambda f: f.degradation, default=None)
    if worst is not None and worst.degradation >= settings.auto_retraining_threshold:
        alerts.append(
            Alert(
                model=model,
                segment=worst.segment if worst.segment is not None else segment,
                metric=worst.metric,
                alert_type="retraining_trigger",
                severity=worst.severity,
                baseline=worst.baseline,
                current=worst.current,
                ci_lower=worst.ci_lower,
                ci_upper=worst.ci_upper,
                relative_change=worst.relative_change,
                p_value=worst.p_value,
                adjusted_p_value=worst.adjusted_p_value,
                timestamp=timestamp,
                batch_id=batch_id,
                model_version=model_version,
                metadata=meta,
                message=(
                    f"{worst.metric} degraded by {worst.degradation:.1%}, beyond the "
                    f"auto-retraining threshold {settings.auto_retraining_threshold:.0%}"
                ),
            )
        )
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
) -> DegradationAnalysis:
    """Findings and alerts for one batch or window (what the tracker stores and delivers)."""
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
    low = any(a.alert_type == "low_performance" for a in alerts)
    return DegradationAnalysis(
        degradation_detected=any(f.degraded for f in findings) or low,
        findings=tuple(findings),
        alerts=tuple(alerts),
        retraining_recommended=any(a.alert_type == "retraining_trigger" for a in alerts),
        performance_score=performance_score,
        low_performance=low,
        settings=settings,
        baseline_version=baseline_version,
    )
