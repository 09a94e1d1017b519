"""Run a parameterized report notebook with papermill and export it to offline HTML.

Outcomes are told apart by the **exception class** papermill / nbclient raise, never by the
executed notebook's metadata (after a cell timeout it looks successful), and mapped to
distinct process exit codes for schedulers:

====================  ====  ==========================================================
``OK``                0     notebook executed and exported
``CELL_ERROR``        2     a cell raised (``PapermillExecutionError``)
``TIMEOUT``           3     a cell ran longer than ``cell_timeout`` (``CellTimeoutError``)
``KERNEL_DIED``       4     the kernel died (``DeadKernelError``)
``EXPORT_FAILED``     5     the HTML export failed
``ALERTS_PRESENT``    6     only with ``fail_on_alerts``: the summary reports alerts
``BAD_USAGE``         64    bad arguments: missing template, unknown parameter, ...
====================  ====  ==========================================================

The notebook may write a JSON summary (``summary.json`` by default) into the output
directory; when the template's ``parameters`` cell declares ``summary_path`` or
``output_dir``, the runner injects them. The summary is read back into
:attr:`RunResult.summary`. Its ``"alerts"`` entry (a count or a list) drives
``ALERTS_PRESENT``.

Secrets: a string parameter holding a URL with a password (``scheme://user:pw@host/...``)
never reaches the notebook. The notebook receives the masked URL (``user:***@host``) and
the kernel process receives the real one in its environment (``PERFKIT_SECRET_<NAME>``);
the template resolves it with :func:`secret_parameter` in the cell after its parameters.
So the executed notebook, its metadata, the HTML and the logs hold no password.

The kernel talks to the runner over CurveZMQ-encrypted TCP when pyzmq supports it, else
over local IPC sockets (POSIX), so it logs no "running over TCP without encryption"
warning.

Examples
--------
>>> int(ExitCode.TIMEOUT), int(EXIT_KERNEL_DIED)
(3, 4)
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from perfkit.exceptions import (
    ReportError,
    ReportExecutionError,
    ReportExportError,
    ReportKernelError,
    ReportTimeoutError,
    ValidationError,
)

__all__ = [
    "EXIT_ALERTS_PRESENT",
    "EXIT_BAD_USAGE",
    "EXIT_CELL_ERROR",
    "EXIT_EXPORT_FAILED",
    "EXIT_KERNEL_DIED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "ExitCode",
    "RunResult",
    "mask_url",
    "run_notebook",
    "run_notebook_exit_code",
    "secret_parameter",
]

logger = logging.getLogger("perfkit")


class ExitCode(IntEnum):
    """Process exit codes of a report run (see the module docstring)."""

    OK = 0
    CELL_ERROR = 2
    TIMEOUT = 3
    KERNEL_DIED = 4
    EXPORT_FAILED = 5
    ALERTS_PRESENT = 6
    BAD_USAGE = 64


EXIT_OK = ExitCode.OK
EXIT_CELL_ERROR = ExitCode.CELL_ERROR
EXIT_TIMEOUT = ExitCode.TIMEOUT
EXIT_KERNEL_DIED = ExitCode.KERNEL_DIED
EXIT_EXPORT_FAILED = ExitCode.EXPORT_FAILED
EXIT_ALERTS_PRESENT = ExitCode.ALERTS_PRESENT
EXIT_BAD_USAGE = ExitCode.BAD_USAGE

#: Parameters the runner fills in when the template declares them and the caller did not.
_AUTO_PARAMETERS = ("summary_path", "output_dir")

#: Prefix of the kernel environment variables that carry secret parameter values.
SECRET_ENV_PREFIX = "PERFKIT_SECRET_"

_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):(?P<pw>[^/?#@]*)@")


def mask_url(url: Any) -> Any:
    """``url`` with its password replaced by ``***`` (non-strings unchanged); see
    :func:`perfkit._checks.mask_url`.

    Examples
    --------
    >>> mask_url("postgresql+psycopg://perf:s3cret@db.example:5432/perf")
    'postgresql+psycopg://perf:***@db.example:5432/perf'
    >>> mask_url("sqlite:///data/perf.db")
    'sqlite:///data/perf.db'
    """
    if not isinstance(url, str):
        return url
    from perfkit._checks import mask_url as _mask

    return _mask(url)


def _has_password(value: Any) -> bool:
    m = _URL_PASSWORD.match(value) if isinstance(value, str) else None
    return bool(m and m["pw"] and m["pw"] != "***")


def secret_parameter(name: str, value: Any) -> Any:
    """Resolve a parameter the runner masked: the real value from the kernel's environment.

    Call it in the template cell after the ``parameters`` cell (for example
    ``store_url = secret_parameter("store_url", store_url)``). When the environment holds
    ``PERFKIT_SECRET_<NAME>`` and its masked form equals ``value``, that real value is
    returned; otherwise ``value`` unchanged (a notebook opened by hand keeps its own value).

    Examples
    --------
    >>> secret_parameter("store_url", "sqlite:///perf.db")
    'sqlite:///perf.db'
    """
    real = os.environ.get(SECRET_ENV_PREFIX + name.upper())
    if real and isinstance(value, str) and mask_url(real) == value:
        return real
    return value


def _split_secrets(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Masked parameters for the notebook and the environment carrying the real values."""
    env: dict[str, str] = {}
    shown = dict(params)
    for name, value in params.items():
        if _has_password(value):
            env[SECRET_ENV_PREFIX + name.upper()] = value
            shown[name] = mask_url(value)
    return shown, env


def _scrub_text(text: str, env: dict[str, str]) -> str:
    """Replace every secret (the URL, and its password when not trivially short) by its mask."""
    for real in env.values():
        text = text.replace(real, mask_url(real))
        m = _URL_PASSWORD.match(real)
        if m and len(m["pw"]) >= 6:
            text = text.replace(m["pw"], "***")
    return text


def _scrub_file(path: Path, env: dict[str, str]) -> None:
    """Belt and braces: a cell that printed a secret must not leave it in the notebook."""
    if not env or not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    clean = _scrub_text(text, env)
    if clean != text:
        logger.warning("a report cell output held a secret; it was masked in %s", path.name)
        path.write_text(clean, encoding="utf-8")


def _kernel_manager_class(env: dict[str, str]) -> type:
    """A kernel manager that adds ``env`` to the kernel's environment and avoids plain TCP."""
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    curve = bool(zmq.has("curve"))
    ipc = not curve and os.name == "posix"

    class _ReportKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            if curve:
                kwargs.setdefault("transport_encryption", "auto")
            elif ipc:
                kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            if env:
                kw["env"] = {**(kw.get("env") or os.environ), **env}
            return await super()._async_pre_start_kernel(**kw)

    return _ReportKernelManager


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`run_notebook`.

    Attributes
    ----------
    notebook_path : pathlib.Path
        The executed notebook.
    html_path : pathlib.Path or None
        The offline HTML export (None when ``html=False`` or the export did not happen).
    summary_path : pathlib.Path or None
        The sidecar JSON summary, if the notebook wrote one.
    summary : dict or None
        Its parsed content.
    exit_code : ExitCode
    duration_s : float
        Wall time of execution and export.
    phases : dict
        Seconds per phase: ``execute`` (kernel start to stop) and ``export`` (HTML).
    """

    notebook_path: Path
    html_path: Path | None
    summary_path: Path | None
    summary: dict[str, Any] | None
    exit_code: ExitCode
    duration_s: float
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when :attr:`exit_code` is ``OK``."""
        return self.exit_code == ExitCode.OK


def _alert_count(summary: dict[str, Any] | None) -> int:
    if not summary or "alerts" not in summary:
        return 0
    alerts = summary["alerts"]
    if isinstance(alerts, bool):
        return int(alerts)
    if isinstance(alerts, int | float):
        return int(alerts)
    try:
        return len(alerts)
    except TypeError:
        return 0


def _read_summary(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("cannot read report summary %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        logger.warning("report summary %s is not a JSON object; ignored", path)
        return None
    return data


def _attach(
    error: Exception,
    exit_code: ExitCode,
    *,
    notebook_path: Path | None,
    html_path: Path | None,
    summary_path: Path | None = None,
) -> Exception:
    error.exit_code = exit_code  # type: ignore[attr-defined]
    error.notebook_path = notebook_path  # type: ignore[attr-defined]
    error.html_path = html_path  # type: ignore[attr-defined]
    error.summary_path = summary_path  # type: ignore[attr-defined]
    return error


def _bad_usage(message: str, parameter: str) -> ValidationError:
    return _attach(  # type: ignore[return-value]
        ValidationError(message, parameter=parameter),
        ExitCode.BAD_USAGE,
        notebook_path=None,
        html_path=None,
    )


def _validate(
    template: str | os.PathLike[str],
    parameters: Any,
    cell_timeout: Any,
    summary_json_name: Any,
) -> tuple[Path, dict[str, Any]]:
    template_path = Path(template)
    if not template_path.is_file():
        raise _bad_usage(f"template {str(template_path)!r} does not exist", "template")
    if template_path.suffix != ".ipynb":
        raise _bad_usage(f"template {str(template_path)!r} is not an .ipynb file", "template")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
        raise _bad_usage(
            f"parameters must be a dict with str keys, got {type(parameters).__name__}",
            "parameters",
        )
    if (
        isinstance(cell_timeout, bool)
        or not isinstance(cell_timeout, int | float)
        or not cell_timeout > 0
    ):
        raise _bad_usage(f"cell_timeout must be a positive number, got {cell_timeout!r}",
                         "cell_timeout")
    if (
        not isinstance(summary_json_name, str)
        or not summary_json_name
        or Path(summary_json_name).name != summary_json_name
    ):
        raise _bad_usage(
            f"summary_json_name must be a plain file name, got {summary_json_name!r}",
            "summary_json_name",
        )
    return template_path, dict(parameters)


def _declared_parameters(template_path: Path) -> dict[str, Any]:
    import papermill

    try:
        return dict(papermill.inspect_notebook(str(template_path)))
    except Exception as exc:
        raise _bad_usage(f"cannot inspect template {str(template_path)!r}: {exc}",
                         "template") from exc


def _warm_export() -> None:
    """Import nbconvert and build the Vega bundle (seconds) while the kernel runs."""
    try:
        from nbconvert import HTMLExporter  # noqa: F401

        from perfkit.report.html import vega_bundle

        vega_bundle()
    except Exception as exc:  # noqa: BLE001 - only a warm-up: the export reports real errors
        logger.debug("export warm-up failed: %s", exc)


def _start_warm_up(html: bool) -> threading.Thread | None:
    if not html:
        return None
    thread = threading.Thread(target=_warm_export, name="perfkit-export-warm-up", daemon=True)
    thread.start()
    return thread


def _try_export(notebook_path: Path, html_path: Path, title: str) -> Path | None:
    """Best-effort export after a failed run: the partial report helps debugging."""
    from perfkit.report.html import export_html

    if not notebook_path.is_file():
        return None
    try:
        return export_html(notebook_path, html_path, title=title)
    except ReportExportError as exc:
        logger.warning("could not export the failed report to HTML: %s", exc)
        return None


def run_notebook(
    template: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    parameters: dict[str, Any] | None = None,
    *,
    kernel_name: str = "python3",
    cell_timeout: float = 600,
    cwd: str | os.PathLike[str] | None = None,
    html: bool = True,
    summary_json_name: str = "summary.json",
    fail_on_alerts: bool = False,
    title: str | None = None,
) -> RunResult:
    """Execute ``template`` with papermill, then export it to offline HTML.

    Writes ``<output_dir>/<stem>.ipynb`` (the executed notebook, also after a failing cell)
    and ``<output_dir>/<stem>.html``.

    Parameters
    ----------
    template : path-like
        The parameterized notebook (a cell tagged ``parameters``).
    output_dir : path-like
        Created if missing.
    parameters : dict, optional
        Values injected after the ``parameters`` cell (Python objects, no type guessing).
        Every name must be declared in the template's ``parameters`` cell.
        ``summary_path`` and ``output_dir`` are filled in automatically when declared.
    kernel_name : str, default "python3"
        Always explicit: papermill's own interpreter runs the kernel.
    cell_timeout : float, default 600
        Seconds allowed per cell.
    cwd : path-like, optional
        Working directory of the kernel (default: the caller's).
    html : bool, default True
        Export the executed notebook to ``<stem>.html``.
    summary_json_name : str, default "summary.json"
        File name of the sidecar summary in ``output_dir``.
    fail_on_alerts : bool, default False
        Return ``ALERTS_PRESENT`` when the summary's ``alerts`` is non-zero / non-empty.
    title : str, optional
        HTML page title; defaults to the template's stem.

    Returns
    -------
    RunResult
        ``exit_code`` is ``OK`` or (with ``fail_on_alerts``) ``ALERTS_PRESENT``.

    Raises
    ------
    ValidationError
        Bad arguments (``.exit_code == BAD_USAGE``).
    ReportExecutionError, ReportTimeoutError, ReportKernelError, ReportExportError
        With ``.exit_code``, ``.notebook_path``, ``.html_path`` and ``.summary_path``; the
        original exception is chained as ``__cause__``.
    """
    template_path, params = _validate(template, parameters, cell_timeout, summary_json_name)
    out_dir = Path(output_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _bad_usage(f"cannot create output_dir {str(out_dir)!r}: {exc}",
                         "output_dir") from exc
    if cwd is not None and not Path(cwd).is_dir():
        raise _bad_usage(f"cwd {str(cwd)!r} is not a directory", "cwd")

    out_dir = out_dir.resolve()
    notebook_path = out_dir / f"{template_path.stem}.ipynb"
    html_target = out_dir / f"{template_path.stem}.html"
    summary_target = out_dir / summary_json_name
    if notebook_path.resolve() == template_path.resolve():
        raise _bad_usage("output_dir must not hold the template itself", "output_dir")

    declared = _declared_parameters(template_path)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise _bad_usage(
            f"parameters {unknown} are not declared in the parameters cell of "
            f"{template_path.name}; declared: {sorted(declared)}",
            "parameters",
        )
    auto = {"summary_path": str(summary_target), "output_dir": str(out_dir)}
    for name in _AUTO_PARAMETERS:
        if name in declared and name not in params:
            params[name] = auto[name]
    summary_target.unlink(missing_ok=True)  # never read a stale summary from an earlier run
    params, secret_env = _split_secrets(params)

    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    page_title = title if title is not None else template_path.stem
    start = time.perf_counter()
    warm_up = _start_warm_up(html)
    logger.info("running report %s -> %s", template_path, notebook_path)
    failure: tuple[type[ReportError], ExitCode, str] | None = None
    cause: BaseException | None = None
    try:
        papermill.execute_notebook(
            str(template_path),
            str(notebook_path),
            parameters=params,
            kernel_name=kernel_name,
            execution_timeout=cell_timeout,
            cwd=None if cwd is None else str(cwd),
            log_output=False,
            progress_bar=False,
            kernel_manager_class=_kernel_manager_class(secret_env),
        )
    except PapermillExecutionError as exc:
        failure = (ReportExecutionError, ExitCode.CELL_ERROR,
                   f"cell {exc.cell_index} raised {exc.ename}: {exc.evalue}")
        cause = exc
    except CellTimeoutError as exc:
        failure = (ReportTimeoutError, ExitCode.TIMEOUT,
                   f"a cell ran longer than cell_timeout={cell_timeout} s")
        cause = exc
    except DeadKernelError as exc:
        failure = (ReportKernelError, ExitCode.KERNEL_DIED, f"the kernel died: {exc}")
        cause = exc
    except NoSuchKernel as exc:
        raise _bad_usage(f"kernel_name {kernel_name!r} is not installed: {exc}",
                         "kernel_name") from exc

    executed = time.perf_counter()
    if warm_up is not None:
        warm_up.join()
    _scrub_file(notebook_path, secret_env)
    _scrub_file(summary_target, secret_env)
    summary_path = summary_target if summary_target.is_file() else None
    if failure is not None:
        error_cls, code, message = failure
        message = _scrub_text(message, secret_env)
        failed_html = _try_export(notebook_path, html_target, page_title) if html else None
        logger.error("report %s failed (exit %d): %s", template_path.name, code, message)
        raise _attach(
            error_cls(f"{template_path.name}: {message}"),
            code,
            notebook_path=notebook_path if notebook_path.is_file() else None,
            html_path=failed_html,
            summary_path=summary_path,
        ) from cause

    html_path: Path | None = None
    if html:
        from perfkit.report.html import export_html

        try:
            html_path = export_html(notebook_path, html_target, title=page_title)
        except ReportExportError as exc:
            raise _attach(exc, ExitCode.EXPORT_FAILED, notebook_path=notebook_path,
                          html_path=None, summary_path=summary_path) from exc.__cause__

    summary = _read_summary(summary_target) if summary_path else None
    code = ExitCode.OK
    if fail_on_alerts and _alert_count(summary) > 0:
        code = ExitCode.ALERTS_PRESENT
    duration = time.perf_counter() - start
    phases = {"execute": executed - start, "export": duration - (executed - start)}
    logger.info("report %s finished in %.1f s (execute %.1f s, export %.1f s; exit %d)",
                template_path.name, duration, phases["execute"], phases["export"], code)
    return RunResult(
        notebook_path=notebook_path,
        html_path=html_path,
        summary_path=summary_path,
        summary=summary,
        exit_code=code,
        duration_s=duration,
        phases=phases,
    )


def run_notebook_exit_code(
    template: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    parameters: dict[str, Any] | None = None,
    **kwargs: Any,
) -> int:
    """Like :func:`run_notebook` but return the exit code instead of raising (for CLIs).

    Failures are logged on the ``perfkit`` logger.

    Examples
    --------
    >>> run_notebook_exit_code("no/such/template.ipynb", "out")
    64
    """
    import inspect

    try:
        inspect.signature(run_notebook).bind(template, output_dir, parameters, **kwargs)
    except TypeError as exc:
        logger.error("bad usage: %s", exc)
        return int(ExitCode.BAD_USAGE)
    try:
        return int(run_notebook(template, output_dir, parameters, **kwargs).exit_code)
    except ValidationError as exc:
        logger.error("bad usage: %s", exc)
        return int(getattr(exc, "exit_code", ExitCode.BAD_USAGE))
    except ReportError as exc:
        return int(getattr(exc, "exit_code", ExitCode.CELL_ERROR))
