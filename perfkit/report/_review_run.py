"""Run the weekly review: the template's location and :func:`run_weekly_review`.

Kept light (no pandas, altair or store imports) so ``perfkit review`` starts the payload
builder (:mod:`perfkit.report.payload`) and the kernel as early as it can. Re-exported by
:mod:`perfkit.report.weekly`.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

from perfkit.exceptions import ValidationError

__all__ = ["TEMPLATE_NAME", "PayloadBuilder", "run_weekly_review", "start_payload_builder", "template_path"]

logger = logging.getLogger("perfkit")

TEMPLATE_NAME = "weekly_review.ipynb"


# --------------------------------------------------------------------------------------------
# template location
# --------------------------------------------------------------------------------------------
def template_path() -> Path:
    """Return the path of the packaged weekly review template.

    Looks in the installed package (``perfkit/_templates``, where the wheel puts it) and
    then in the source tree (``templates/`` next to the ``perfkit`` package).

    Examples
    --------
    >>> template_path().name
    'weekly_review.ipynb'
    """
    candidates = []
    try:
        candidates.append(Path(str(resources.files("perfkit") / "_templates" / TEMPLATE_NAME)))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - namespace oddities
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "templates" / TEMPLATE_NAME)
    for c in candidates:
        if c.is_file():
            return c
    raise ValidationError(
        f"the weekly review template {TEMPLATE_NAME} was not found (looked in "
        f"{', '.join(str(c.parent) for c in candidates)}); reinstall perfkit",
        parameter="template",
    )


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
def _abs(p: Any) -> str | None:
    if p is None:
        return None
    s = os.fspath(p)
    return s if "://" in s else str(Path(s).resolve())


def _request(store_url: Any, config_path: Any, model: Any, segment: Any, as_of: Any, days: Any) -> dict[str, Any]:
    """The review's arguments as the template and the payload builder receive them."""
    if as_of is not None and not isinstance(as_of, str):
        import pandas as pd

        as_of = pd.Timestamp(as_of).isoformat()
    return {"store_url": _abs(store_url), "config_path": _abs(config_path), "model": model,
            "segment": segment, "as_of": as_of, "days": days}


def start_payload_builder(
    store_url: str | os.PathLike[str],
    *,
    model: str | None = None,
    segment: str | None = None,
    as_of: Any = None,
    days: float = 7,
    config_path: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> PayloadBuilder:
    """Start building the review's payload now (``perfkit review`` does it before its own checks).

    Pass the result to :func:`run_weekly_review` (``payload_builder=``) with the same
    arguments; it is used only if they match, and is always stopped by then. Call
    :meth:`PayloadBuilder.close` when the review is not run after all.
    """
    return PayloadBuilder(_request(store_url, config_path, model, segment, as_of, days),
                          os.getcwd() if cwd is None else os.fspath(cwd))


def run_weekly_review(
    store_url: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    model: str | None = None,
    segment: str | None = None,
    as_of: Any = None,
    days: float = 7,
    config_path: str | os.PathLike[str] | None = None,
    cell_timeout: float = 600,
    fail_on_alerts: bool = False,
    show_widgets: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    payload_builder: PayloadBuilder | None = None,
) -> Any:
    """Execute the weekly review template and export it to offline HTML.

    Writes ``weekly_review.ipynb``, ``weekly_review.html`` and ``summary.json`` into
    ``output_dir``. Needs only papermill, nbconvert and ipykernel (no JupyterLab): the
    kernel is ``python3`` on papermill's own interpreter. The tables and charts are built by
    a process of their own while the kernel starts (see :mod:`perfkit.report.payload`).

    Parameters
    ----------
    store_url : str or path-like
        SQLAlchemy URL or SQLite path (relative paths are made absolute first).
    output_dir : path-like
    model, segment, as_of, days, config_path
        See :func:`weekly_context`.
    cell_timeout : float, default 600
        Seconds allowed per notebook cell.
    fail_on_alerts : bool, default False
        Return ``ExitCode.ALERTS_PRESENT`` when the period has non-suppressed alerts.
    show_widgets : bool, default False
        Also display the live ipywidgets explorer (useful only in JupyterLab).
    cwd : path-like, optional
        Working directory of the kernel (default: the current directory).
    payload_builder : PayloadBuilder, optional
        One already started by :func:`start_payload_builder` with the same arguments
        (otherwise it is stopped and a new one started). Always closed on return.

    Returns
    -------
    perfkit.report.RunResult

    Raises
    ------
    perfkit.exceptions.ValidationError
        Bad arguments (``.exit_code == ExitCode.BAD_USAGE``).
    perfkit.exceptions.ReportError
        A failed run, with ``.exit_code`` (cell error, timeout, dead kernel, export).
    """
    from perfkit.report.runner import run_notebook

    kernel_cwd = os.getcwd() if cwd is None else os.fspath(cwd)
    try:
        request = _request(store_url, config_path, model, segment, as_of, days)
    except BaseException:
        if payload_builder is not None:
            payload_builder.close()
        raise
    builder = payload_builder
    if builder is None or builder.request != request or builder.cwd != kernel_cwd or builder.failed_to_start:
        if builder is not None:
            logger.debug("the payload builder was started with other arguments: restarted")
            builder.close()
        builder = PayloadBuilder(request, kernel_cwd)
    params = {**request, "show_widgets": bool(show_widgets), "payload_path": builder.path}
    with builder:
        return run_notebook(template_path(), output_dir, params, kernel_name="python3",
                            cell_timeout=cell_timeout, cwd=kernel_cwd, fail_on_alerts=fail_on_alerts,
                            title="Weekly performance review")


class PayloadBuilder:
    """``python -m perfkit.report.payload`` in a process of its own, started at construction.

    The review's analysis and rendering then run while papermill starts the kernel (two
    cores, two processes); the template waits for :attr:`path`. The arguments (a store URL
    may hold a password) go through stdin, never argv. When the builder dies without a word,
    the error file says so, so the waiting template fails instead of timing out. :meth:`close`
    (or leaving the ``with`` block) stops it and removes its temporary directory. If the
    process cannot be started, :attr:`path` is None and the template builds the payload in
    the kernel.
    """

    def __init__(self, request: dict[str, Any], cwd: str) -> None:
        import subprocess
        import sys
        import tempfile
        import threading

        self.request = dict(request)
        self.cwd = cwd
        self.proc: Any = None
        self.failed_to_start = False
        self.tmp = tempfile.mkdtemp(prefix="perfkit-review-")
        path = os.path.join(self.tmp, "payload.json")
        self.path: str | None = path
        log_path = os.path.join(self.tmp, "builder.log")
        try:
            with open(log_path, "wb") as log:
                self.proc = subprocess.Popen([sys.executable, "-m", "perfkit.report.payload"],
                                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                             cwd=cwd)
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({**self.request, "payload_path": path}).encode())
            self.proc.stdin.close()
        except (OSError, ValueError) as exc:  # no process: the kernel builds the payload itself
            logger.debug("payload builder not started (%s): the kernel builds the review", exc)
            self.failed_to_start = True
            self.close()
            self.path = None
            return
        proc = self.proc

        def watch() -> None:
            from perfkit.report._payload_io import write_error

            code = proc.wait()
            if code != 0 and not os.path.exists(path) and not os.path.exists(path + ".error"):
                try:
                    tail = Path(log_path).read_text(encoding="utf-8", errors="replace").strip()[-2000:]
                    write_error(path, f"the review builder exited with code {code}" + (f": {tail}" if tail else ""))
                except OSError:  # the run is over and its directory gone
                    pass

        threading.Thread(target=watch, name="perfkit-payload-watch", daemon=True).start()

    def close(self) -> None:
        """Stop the process (if still running) and remove the temporary directory."""
        import shutil

        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> PayloadBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
