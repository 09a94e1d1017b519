"""Reading and writing the weekly review's payload files (see :mod:`perfkit.report.payload`).

A leaf module (standard library and :mod:`perfkit._files` only) shared by the template side, the
builder and the runner.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from perfkit._files import write_text_atomic

__all__ = ["PAYLOAD_FORMAT", "read_payload", "write_atomic", "write_error", "write_payload"]

PAYLOAD_FORMAT = "perfkit.review_payload/1"
_POLL_S = 0.02


def _error_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".error")


def write_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable as the umask allows."""
    write_text_atomic(path, json.dumps(data, allow_nan=False, indent=indent,
                                       separators=(",", ": ") if indent else (",", ":")))


def write_payload(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a reader never sees half a file)."""
    write_atomic(Path(path), payload)


def write_error(path: str | os.PathLike[str], error: BaseException | str) -> None:
    """Record that the payload for ``path`` could not be built (the template raises it).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "payload.json")
    >>> write_error(path, ValueError("bad"))
    >>> read_payload(path, timeout=1)
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ReportError: ValueError: bad
    """
    if isinstance(error, BaseException):
        data = {"ename": type(error).__name__, "evalue": str(error),
                "parameter": getattr(error, "parameter", None)}
    else:
        data = {"ename": "ReportError", "evalue": str(error), "parameter": None}
    write_atomic(_error_path(path), data)


def _raise_error(data: dict[str, Any]) -> None:
    from perfkit import exceptions

    ename, evalue = str(data.get("ename") or "ReportError"), str(data.get("evalue") or "")
    cls = getattr(exceptions, ename, None)
    if isinstance(cls, type) and issubclass(cls, exceptions.PerfkitError):
        error = cls.__new__(cls)
        Exception.__init__(error, evalue)
        if data.get("parameter") is not None or issubclass(cls, exceptions.ValidationError):
            error.parameter = data.get("parameter")  # type: ignore[attr-defined]
        raise error
    raise exceptions.ReportError(f"{ename}: {evalue}")


def read_payload(path: str | os.PathLike[str], *, timeout: float = 600) -> dict[str, Any]:
    """Wait (up to ``timeout`` seconds) for the payload at ``path`` and return it.

    Raises the builder's error when it wrote ``<path>.error`` (a perfkit error keeps its
    class), and ``ReportTimeoutError`` when neither file appeared in time.
    """
    from perfkit.exceptions import ReportError, ReportTimeoutError

    target, error = Path(path), _error_path(path)
    deadline = time.monotonic() + float(timeout)
    while True:
        if target.is_file():
            payload = json.loads(target.read_text(encoding="utf-8"))
            if not isinstance(payload, dict) or payload.get("format") != PAYLOAD_FORMAT:
                raise ReportError(f"{target} is not a perfkit review payload")
            return payload
        if error.is_file():
            _raise_error(json.loads(error.read_text(encoding="utf-8")))
        if time.monotonic() > deadline:
            raise ReportTimeoutError(f"the review payload {target} did not appear within {timeout:g} s")
        time.sleep(_POLL_S)
