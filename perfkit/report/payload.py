"""The weekly review's outputs, built outside the kernel while it starts, shown by the template.

``perfkit review`` (:func:`perfkit.report.weekly.run_weekly_review`) starts a builder process
(``python -m perfkit.report.payload``) next to the papermill kernel. The builder loads the
store, analyses it and renders every table and chart
(:func:`perfkit.report.weekly.review_payload`) while the kernel starts, and writes the result
to a JSON file whose path the template receives as its ``payload_path`` parameter. The
template only waits for that file and displays it (:func:`review_outputs`,
:func:`show_outputs`): the kernel imports IPython's display and this module, nothing heavy.

Opened by hand (no ``payload_path``, or its file gone), the template builds the same payload
in the kernel with the same function.

The payload is a JSON object: ``format`` (:data:`PAYLOAD_FORMAT`), ``outputs`` (Jupyter mime
bundles, in display order), ``summary`` (the JSON summary, written to ``summary_path`` by the
notebook), ``models`` (``[{"model", "empty"}]``), ``empty`` and ``log`` (the builder's
warnings, shown on the notebook's stderr). A failed build writes ``<payload_path>.error``
instead (``{"ename", "evalue"}``) and the template raises it.

This module imports only the standard library (and IPython's display, when showing).

Examples
--------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "payload.json")
>>> write_payload(path, {"format": PAYLOAD_FORMAT, "outputs": [], "summary": {}, "models": [],
...                      "empty": True, "log": []})
>>> read_payload(path, timeout=1)["empty"]
True
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["PAYLOAD_FORMAT", "read_payload", "review_outputs", "show_outputs", "write_error", "write_payload"]

PAYLOAD_FORMAT = "perfkit.review_payload/1"
_POLL_S = 0.02


def _error_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".error")


def _write_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, allow_nan=False, indent=indent,
                      separators=(",", ": ") if indent else (",", ":"))
        umask = os.umask(0)  # mkstemp creates 0600: a summary is meant to be read, honour the umask
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_payload(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a reader never sees half a file)."""
    _write_atomic(Path(path), payload)


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
    _write_atomic(_error_path(path), data)


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


def review_outputs(payload_path: str | os.PathLike[str] | None = None, *, summary_path: Any = None,
                   timeout: float = 600, **params: Any) -> dict[str, Any]:
    """The template's one call: the payload built by ``perfkit review``, or built here.

    Parameters
    ----------
    payload_path : path-like, optional
        Where the builder writes the payload. None (or a file that is gone and never
        coming: no builder is running when the notebook is opened by hand, see below):
        build it in this process with :func:`perfkit.report.weekly.review_payload`.
    summary_path : path-like, optional
        Write the payload's JSON summary here (atomically).
    timeout : float, default 600
        Seconds to wait for the builder.
    **params
        ``store_url``, ``config_path``, ``model``, ``segment``, ``as_of``, ``days``: see
        :func:`perfkit.report.weekly.weekly_context`.

    Returns
    -------
    dict
        The payload (see the module docstring).
    """
    payload_dir = Path(payload_path).parent if payload_path else None
    if payload_path and payload_dir is not None and payload_dir.is_dir():
        payload = read_payload(payload_path, timeout=timeout)
    else:  # opened by hand, or a re-run of an executed notebook whose builder is long gone
        from perfkit.report.weekly import review_payload

        payload = review_payload(**params)
    for line in payload.get("log") or ():
        sys.stderr.write(f"{line}\n")
    if summary_path:
        summary = Path(summary_path)
        _write_atomic(summary, payload["summary"], indent=2)
    return payload


def show_outputs(payload: dict[str, Any]) -> None:
    """Display the payload's outputs (Jupyter mime bundles) in order."""
    from IPython.display import display

    for bundle in payload["outputs"]:
        display(bundle, raw=True)


def _main() -> int:
    """Builder process: parameters as JSON on stdin (secrets never reach argv)."""
    request = json.loads(sys.stdin.read())
    path = request.pop("payload_path")
    try:
        from perfkit.report._startup import defer_rfc3987_syntax

        defer_rfc3987_syntax()
        from perfkit.report.weekly import review_payload

        payload = review_payload(**request)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the template, which raises it
        write_error(path, exc)
        return 1
    write_payload(path, payload)
    return 0


if __name__ == "__main__":  # pragma: no cover - run by run_weekly_review in a subprocess
    _code = _main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_code)  # no interpreter teardown: vl-convert's runtime threads can hold it for seconds
