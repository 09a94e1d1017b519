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
