"""The metric core: exact, mergeable states and metrics with confidence intervals.

Pure functions over mergeable state::

    state = compute_state(y_true, y_pred, y_pred_proba)   # one batch
    week = merge_states([monday, tuesday, ...])          # exact re-aggregation
    report = evaluate(week)                              # values + intervals
"""

from __future__ import annotations

from perfkit.metrics._moments import Moments
from perfkit.metrics.evaluate import (
    MetricReport,
    compute_metrics,
    evaluate,
    performance_score,
    performance_score_se,
)
from perfkit.metrics.registry import (
    ALIASES,
    CUSTOM_METRICS,
    METRICS,
    CustomMetric,
    MetricSpec,
    MetricValue,
    get_metric,
    metric_names,
    register_custom_metric,
    register_metric,
    resolve_metric_name,
    threshold_metric,
)
from perfkit.metrics.state import (
    ClassificationState,
    RegressionState,
    State,
    compute_state,
    merge_state_dicts,
    merge_states,
    state_from_dict,
)

__all__ = [
    "ALIASES",
    "CUSTOM_METRICS",
    "METRICS",
    "ClassificationState",
    "CustomMetric",
    "MetricReport",
    "MetricSpec",
    "MetricValue",
    "Moments",
    "RegressionState",
    "State",
    "compute_metrics",
    "compute_state",
    "evaluate",
    "get_metric",
    "merge_state_dicts",
    "merge_states",
    "metric_names",
    "performance_score",
    "performance_score_se",
    "register_custom_metric",
    "register_metric",
    "resolve_metric_name",
    "state_from_dict",
    "threshold_metric",
]
