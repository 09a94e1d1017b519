"""Writing result files: one atomic writer for reports, summaries, configs and backups (internal).

Standard library only (the review kernel imports it through :mod:`perfkit.report._payload_io`).

==============================  ==============================================================
:func:`check_output_path`       a path to write a file to (a non-path or a directory refused)
:func:`atomic_text_file`        a text file written through a temporary file: all or nothing
:func:`write_text_atomic`       :func:`atomic_text_file` of one string
:func:`write_output`            the public entry points' form: checked, failures named
==============================  ==============================================================
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from perfkit.exceptions import InputTypeError, ValidationError

__all__ = ["atomic_text_file", "check_output_path", "write_output", "write_text_atomic"]


def check_output_path(path: Any, parameter: str = "path") -> Path:
    """``path`` as a Path to write a file to; a non-path or a directory is refused, naming ``parameter``."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{parameter} must be a str or path-like, got {type(path).__name__}", parameter=parameter)
    p = Path(path)
    if p.is_dir():
        raise ValidationError(f"{parameter} {str(p)!r} is a directory; give a file name", parameter=parameter)
    return p


@contextlib.contextmanager
def atomic_text_file(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file at ``path`` (its directory created) that readers see whole or not at all.

    Written to a temporary file beside it and moved into place when the block ends; on any
    error the temporary file is removed and the error raised. The file is readable as the
    umask allows (mkstemp creates 0600, and a summary or report is meant to be read).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_text_file`)."""
    with atomic_text_file(path) as handle:
        handle.write(text)


def write_output(path: Any, text: str, parameter: str = "path") -> Path:
    """Write ``text`` to a user-given ``path`` atomically and return it.

    Raises :class:`~perfkit.exceptions.ValidationError` naming ``parameter`` when the file
    cannot be written (a directory, an unwritable place ...); nothing is left behind.
    """
    p = check_output_path(path, parameter)
    try:
        write_text_atomic(p, text)
    except OSError as exc:
        raise ValidationError(f"{parameter} {str(p)!r} cannot be written: {exc}", parameter=parameter) from exc
    return p
