"""Start-up costs of the report processes (the CLI, the payload builder): imports deferred.

``jsonschema`` (imported by nbformat, papermill and altair) imports ``rfc3987_syntax`` when it
is installed (JupyterLab's dependencies pull it in), and that module builds an Earley parser
of the RFC 3987 grammar at import: about 1.3 s of CPU per process, for a format checker
("iri") no report ever uses. :func:`defer_rfc3987_syntax` puts a stand-in module in its
place whose functions import the real one on first use, so the behaviour is unchanged and
only a process that really checks an IRI pays for the parser.

Only programs call this (``perfkit`` commands, the review's payload builder): importing
perfkit as a library changes nothing in the caller's interpreter.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

__all__ = ["defer_rfc3987_syntax"]

_NAME = "rfc3987_syntax"


def _real() -> types.ModuleType:
    return importlib.import_module(f"{_NAME}.syntax_helpers")


def defer_rfc3987_syntax() -> bool:
    """Replace a not yet imported ``rfc3987_syntax`` by a stand-in that loads it on first use.

    Returns True when the stand-in was installed (False: not installed, or already imported).

    Examples
    --------
    >>> isinstance(defer_rfc3987_syntax(), bool)
    True
    """
    if _NAME in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(_NAME)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    stub = types.ModuleType(_NAME, "stand-in for rfc3987_syntax: the real module is imported on first use")
    stub.__path__ = list(spec.submodule_search_locations)  # its submodules import as usual

    def is_valid_syntax(term: str, value: str) -> Any:
        return _real().is_valid_syntax(term, value)

    def parse(term: str, value: str) -> Any:
        return _real().parse(term, value)

    def __getattr__(name: str) -> Any:  # anything else the real package exports
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_real(), name)

    stub.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stub.parse = parse  # type: ignore[attr-defined]
    stub.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[_NAME] = stub
    return True
