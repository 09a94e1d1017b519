"""Live-notebook widgets (ipywidgets, needs the ``report`` extra).

>>> from perfkit.widgets import ThresholdExplorer, explore_thresholds
>>> callable(explore_thresholds)
True
"""

from __future__ import annotations

from perfkit.widgets.explorer import (
    GATING_OPTIONS,
    MAX_CHART_POINTS,
    ThresholdExplorer,
    alert_counts,
    example_history,
    explore_thresholds,
)

__all__ = [
    "GATING_OPTIONS",
    "MAX_CHART_POINTS",
    "ThresholdExplorer",
    "alert_counts",
    "example_history",
    "explore_thresholds",
]
