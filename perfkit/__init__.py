"""perfkit: model-performance monitoring that is exact, fast and statistically honest.

>>> from perfkit import ModelPerformanceTracker, compute_metrics
>>> round(compute_metrics([0, 1, 1, 0], [0, 1, 0, 0])["accuracy"].value, 2)
0.75
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # pragma: no cover
    from perfkit.config import PerformanceConfig, load_config, save_config
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

#: Public names imported on first use (``import perfkit`` stays fast: numpy, scipy, pandas,
#: numba, SQLAlchemy ... load only when a tracker or a metric is used).
_LAZY = {
    "PerformanceConfig": "perfkit.config",
    "load_config": "perfkit.config",
    "save_config": "perfkit.config",
    "MetricReport": "perfkit.metrics",
    "MetricValue": "perfkit.metrics",
    "compute_metrics": "perfkit.metrics",
    "compute_state": "perfkit.metrics",
    "evaluate": "perfkit.metrics",
    "merge_states": "perfkit.metrics",
    "register_custom_metric": "perfkit.metrics",
    "state_from_dict": "perfkit.metrics",
    "ModelPerformanceTracker": "perfkit.tracker",
    "ProductionMonitor": "perfkit.tracker",
    "TrackingResult": "perfkit.tracker",
}

_SUBMODULES = frozenset({"alerts", "analysis", "cli", "config", "demo", "engines", "metrics", "report",
                         "store", "summary", "tracker", "widgets"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in _SUBMODULES:  # ``perfkit.metrics`` etc. after a plain ``import perfkit``
            return importlib.import_module(f"perfkit.{name}")
        raise AttributeError(f"module 'perfkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
