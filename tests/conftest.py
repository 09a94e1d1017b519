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
