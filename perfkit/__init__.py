"""perfkit: model-performance monitoring that is exact, fast and statistically honest.

>>> from perfkit import ModelPerformanceTracker, compute_metrics
>>> round(compute_metrics([0, 1, 1, 0], [0, 1, 0, 0])["accuracy"].value, 2)
0.75
"""

from __future__ import annotations

import logging

from perfkit.config import PerformanceConfig, load_config, save_config
from perfkit.exceptions import (
    ConfigError,
    DeliveryError,
    EngineError,
    PerfkitError,
    ReportError,
    StateError,
    StoreError,
    ValidationError,
)
from perfkit.metrics import (
    MetricReport,
    MetricValue,
    compute_metrics,
    compute_state,
    evaluate,
    merge_states,
    register_custom_metric,
    state_from_dict,
)
from perfkit.tracker import ModelPerformanceTracker, ProductionMonitor, TrackingResult

__version__ = "0.1.0"

logging.getLogger("perfkit").addHandler(logging.NullHandler())

__all__ = [
    "ConfigError",
    "DeliveryError",
    "EngineError",
    "MetricReport",
    "MetricValue",
    "ModelPerformanceTracker",
    "PerfkitError",
    "PerformanceConfig",
    "ProductionMonitor",
    "ReportError",
    "StateError",
    "StoreError",
    "TrackingResult",
    "ValidationError",
    "__version__",
    "compute_metrics",
    "compute_state",
    "evaluate",
    "load_config",
    "merge_states",
    "register_custom_metric",
    "save_config",
    "state_from_dict",
]
