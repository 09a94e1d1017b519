"""Shared pytest setup: every module in ``tests/fixtures/`` contributes its fixtures."""

from __future__ import annotations

import importlib
import pathlib
import sys

_HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(_HERE / "fixtures"))

for _path in sorted((_HERE / "fixtures").glob("*.py")):
    _module = importlib.import_module(_path.stem)
    for _name in getattr(_module, "__all__", []):
        globals()[_name] = getattr(_module, _name)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_working_directory(tmp_path_factory, monkeypatch):
    """perfkit writes under data/performance/ of the working directory by default: never the repo's."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in ("PERFKIT_CONFIG", "PERFKIT_STORE_URL", "PERFKIT_WEBHOOK_URL", "PERFKIT_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


#: The longest test files, longest first (measured one file at a time; see the Makefile's
#: ``test`` target). ``make test`` runs files in parallel with ``--dist loadfile``: a worker takes
#: the next file when it finishes one, so starting the long files first keeps the end of the run
#: from waiting on one long file while the other workers are idle (longest-first scheduling).
SLOW_FILES_FIRST = (
    "test_metrics_intervals.py",
    "test_delivery.py",
    "test_tracker.py",
    "test_weekly_review.py",
    "test_engines.py",
    "test_structure.py",
    "test_trend.py",
    "test_report_runner.py",
    "test_jupyterlab_browser.py",
    "test_decision_core.py",
    "test_weekly_browser.py",
    "test_estimate.py",
    "test_cli.py",
    "test_detection_rates.py",
    "test_notebooks.py",
    "test_report_html_browser.py",
    "test_widgets.py",
)


def pytest_collection_modifyitems(config, items):
    """Long files first (stable: every other file keeps its collection order)."""
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
