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
from pathlib import Path
from typing import Any

from perfkit.report._payload_io import (
    PAYLOAD_FORMAT,
    read_payload,
    write_atomic,
    write_error,
    write_payload,
)

__all__ = ["PAYLOAD_FORMAT", "read_payload", "review_outputs", "show_outputs", "write_error", "write_payload"]


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
        write_atomic(summary, payload["summary"], indent=2)
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
