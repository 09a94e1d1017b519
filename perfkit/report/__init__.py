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

import importlib
from typing import Any

#: Where each public name lives; the submodules (altair, nbconvert, papermill ...) are imported
#: on first access, so ``import perfkit.report.<light module>`` stays light (PEP 562).
_WHERE = {
    **dict.fromkeys(("SEVERITY_COLORS", "apply_theme", "chart_to_svg", "explorer_chart", "metric_bounds",
                     "metric_chart", "save_chart", "segment_chart", "theme_config", "threshold_explorer_chart",
                     "volume_chart"), "charts"),
    **dict.fromkeys(("chart_html", "chart_mimebundle", "escape_markdown", "format_markdown", "show",
                     "show_markdown"), "display"),
    "export_html": "html",
    **dict.fromkeys(("EXIT_ALERTS_PRESENT", "EXIT_BAD_USAGE", "EXIT_CELL_ERROR", "EXIT_EXPORT_FAILED",
                     "EXIT_KERNEL_DIED", "EXIT_OK", "EXIT_TIMEOUT", "ExitCode", "RunResult", "run_notebook",
                     "run_notebook_exit_code"), "runner"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


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
