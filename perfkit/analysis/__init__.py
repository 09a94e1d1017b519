"""Analysis of a metric history: trends, change points, time to breach, prediction drift."""

from __future__ import annotations

from perfkit.analysis._decide import (
    MIN_ROWS_BOOTSTRAP_Z,
    ROW_COLUMNS,
    adjust_pvalues,
    decide,
    score_test_diff,
    severity_for,
    threshold_value,
)
from perfkit.analysis.degradation import (
    DegradationAnalysis,
    MetricFinding,
    assess,
    build_alerts,
    compare_metric,
    detect_degradation,
    history_frame,
    metric_status,
    replay,
    replay_decisions,
)
from perfkit.analysis.drift import (
    CorrelationResult,
    DriftResult,
    compare_distributions,
    drift_performance_correlation,
    psi_label,
)
from perfkit.analysis.trend import (
    ChangePointResult,
    TrendResult,
    analyze_trend,
    detect_change_point,
    naive_trend_direction,
    trend_from_frame,
)

__all__ = [
    "ROW_COLUMNS",
    "adjust_pvalues",
    "decide",
    "history_frame",
    "replay",
    "replay_decisions",
    "MIN_ROWS_BOOTSTRAP_Z",
    "score_test_diff",
    "threshold_value",
    "metric_status",
    "DegradationAnalysis",
    "MetricFinding",
    "assess",
    "build_alerts",
    "compare_metric",
    "detect_degradation",
    "severity_for",
    "ChangePointResult",
    "CorrelationResult",
    "DriftResult",
    "TrendResult",
    "analyze_trend",
    "compare_distributions",
    "detect_change_point",
    "drift_performance_correlation",
    "naive_trend_direction",
    "psi_label",
    "trend_from_frame",
]
