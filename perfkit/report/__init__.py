"""Offline weekly reports: altair charts, notebook display, papermill runs, HTML export.

Needs the ``report`` extra (altair, vl-convert-python, papermill, nbconvert, ipykernel).
The submodules import their heavy dependencies lazily where they can.

Examples
--------
>>> from perfkit import report
>>> report.ExitCode.CELL_ERROR
<ExitCode.CELL_ERROR: 2>
"""

from __future__ import annotations

from perfkit.report.charts import (
    SEVERITY_COLORS,
    apply_theme,
    chart_to_svg,
    explorer_chart,
    metric_bounds,
    metric_chart,
    save_chart,
    segment_chart,
    theme_config,
    threshold_explorer_chart,
    volume_chart,
)
from perfkit.report.display import (
    chart_html,
    chart_mimebundle,
    escape_markdown,
    format_markdown,
    show,
    show_markdown,
)
from perfkit.report.html import export_html
from perfkit.report.runner import (
    EXIT_ALERTS_PRESENT,
    EXIT_BAD_USAGE,
    EXIT_CELL_ERROR,
    EXIT_EXPORT_FAILED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_TIMEOUT,
    ExitCode,
    RunResult,
    run_notebook,
    run_notebook_exit_code,
)

__all__ = [
    "EXIT_ALERTS_PRESENT",
    "EXIT_BAD_USAGE",
    "EXIT_CELL_ERROR",
    "EXIT_EXPORT_FAILED",
    "EXIT_KERNEL_DIED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "SEVERITY_COLORS",
    "ExitCode",
    "RunResult",
    "apply_theme",
    "chart_html",
    "chart_mimebundle",
    "chart_to_svg",
    "escape_markdown",
    "explorer_chart",
    "export_html",
    "format_markdown",
    "metric_bounds",
    "metric_chart",
    "run_notebook",
    "run_notebook_exit_code",
    "save_chart",
    "segment_chart",
    "show",
    "show_markdown",
    "theme_config",
    "threshold_explorer_chart",
    "volume_chart",
]
