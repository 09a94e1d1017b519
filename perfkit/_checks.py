"""Boundary checks shared by every public entry point (internal).

One helper per rule, so that the tracker, the store, the summary, the reports, the widgets
and the CLI refuse the same inputs with the same message:

==========================  ===================================================================
:func:`check_name`          model / segment / batch / version / channel names
:func:`check_days`          window lengths in days
:func:`check_timestamp`     points in time (naive values refused, whatever their type)
:func:`check_metadata`      user metadata (JSON-serializable, nesting depth limited)
:func:`mask_url`            store and webhook URLs shown in messages, logs and reports
==========================  ===================================================================

JSON-safe conversion of results lives in :mod:`perfkit._json` (:func:`~perfkit._json.json_safe`).

Every check raises a :class:`~perfkit.exceptions.ValidationError` (or
:class:`~perfkit.exceptions.InputTypeError` for a wrong type) whose ``parameter`` names the
offending argument; callers that must raise another class (``ConfigError``) wrap it.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from perfkit.exceptions import InputTypeError, ValidationError

__all__ = [
    "MAX_DAYS",
    "MAX_METADATA_DEPTH",
    "MAX_NAME_LENGTH",
    "check_days",
    "check_level",
    "check_metadata",
    "check_name",
    "check_timestamp",
    "mask_url",
]

#: Longest accepted name, in characters (the ``VARCHAR(255)`` columns of every backend).
MAX_NAME_LENGTH = 255
#: Deepest accepted nesting of metadata (dicts / lists inside each other).
MAX_METADATA_DEPTH = 64
#: Longest accepted window (about 1,000 years: beyond it date arithmetic overflows).
MAX_DAYS = 366_000.0


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def check_name(value: Any, parameter: str, *, optional: bool = False) -> str | None:
    """Check a name (model, segment, batch id, model version, channel ...).

    The rule, the same on every store backend: a ``str`` that is not blank (empty or
    whitespace only), at most :data:`MAX_NAME_LENGTH` (255) characters, without NUL
    characters (PostgreSQL cannot store them) and encodable as UTF-8. Names are kept
    **exactly as given**: nothing is stripped, so ``"churn "`` and ``"churn"`` are two
    different names (stripping silently would merge or split histories).

    Parameters
    ----------
    value : object
        The candidate name.
    parameter : str
        The parameter name used in the error.
    optional : bool, default False
        Accept ``None`` (returned as ``None``).

    Returns
    -------
    str or None
        ``value`` unchanged.

    Raises
    ------
    ValidationError
        ``value`` breaks the rule; ``parameter`` is set.

    Examples
    --------
    >>> check_name("churn", "model")
    'churn'
    >>> check_name(None, "segment", optional=True) is None
    True
    >>> check_name("   ", "batch_id")
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ValidationError: batch_id must be a non-blank str, got '   '
    """
    if value is None and optional:
        return None
    kind = "a non-blank str or None" if optional else "a non-blank str"
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{parameter} must be {kind}, got {_short(value)}", parameter=parameter)
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"{parameter} must have at most {MAX_NAME_LENGTH} characters, got {len(value)} "
            f"({_short(value)})",
            parameter=parameter,
        )
    if "\x00" in value:
        raise ValidationError(f"{parameter} must not contain NUL characters, got {_short(value)}",
                              parameter=parameter)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{parameter} is not valid Unicode text ({exc.reason}): {_short(value)}",
                              parameter=parameter) from exc
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------
def check_level(value: Any, parameter: str = "level") -> float:
    """A confidence level: a real number strictly between 0 and 1 (not a bool).

    >>> check_level(0.9)
    0.9
    >>> check_level(1.0)
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ValidationError: level must be in (0, 1), got 1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 < value < 1.0):
        raise ValidationError(f"{parameter} must be in (0, 1), got {value!r}", parameter=parameter)
    return float(value)


def check_days(value: Any, parameter: str = "days", *, allow_zero: bool = False) -> float:
    """Check a window length in days: a finite real number > 0 (>= 0 with ``allow_zero``).

    At most :data:`MAX_DAYS` (about 1,000 years; beyond it date arithmetic overflows).

    Returns
    -------
    float

    Raises
    ------
    ValidationError
        Not a number (booleans included), NaN / inf, out of range; ``parameter`` is set.

    Examples
    --------
    >>> check_days(7)
    7.0
    >>> check_days(0, "days", allow_zero=True)
    0.0
    >>> check_days(-1)
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ValidationError: days must be a number of days > 0 (at most 366000), got -1
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0) and v <= MAX_DAYS
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(
            f"{parameter} must be a number of days {bound} (at most {MAX_DAYS:g}), got {_short(value)}",
            parameter=parameter,
        )
    return v


# --------------------------------------------------------------------------------------------
# timestamps
# --------------------------------------------------------------------------------------------
def check_timestamp(value: Any, parameter: str = "timestamp", *, none_is_now: bool = False) -> datetime:
    """Check a point in time and return it as a ``datetime`` in UTC.

    Accepted: a timezone-aware ``datetime`` or ``pandas.Timestamp``, or an ISO 8601 string
    with an offset (``"2024-05-01T12:00:00+02:00"``, ``"...Z"``). **Naive values are refused
    whatever their type** - a ``datetime`` without ``tzinfo``, a ``numpy.datetime64`` (numpy
    datetimes never carry a timezone), a tz-less ``pandas.Timestamp`` or an ISO string without
    offset - because guessing UTC or local time would silently shift batches by hours.

    Parameters
    ----------
    value : datetime, pandas.Timestamp, numpy.datetime64, str or None
    parameter : str
        The parameter name used in the error.
    none_is_now : bool, default False
        Return the current time for ``None`` (else ``None`` is a type error).

    Returns
    -------
    datetime
        Timezone-aware, ``tzinfo=UTC``.

    Raises
    ------
    ValidationError
        A naive value, NaT or an unparseable string.
    InputTypeError
        Not a time at all.

    Examples
    --------
    >>> from datetime import timedelta, timezone
    >>> check_timestamp(datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))))
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> check_timestamp("2024-01-01T00:00:00Z")
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> check_timestamp(np.datetime64("2024-01-01T00:00"))
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ValidationError: timestamp must be timezone-aware, got naive numpy.datetime64 2024-01-01T00:00:00 (numpy datetimes carry no timezone: pass pd.Timestamp(value, tz='UTC') if it is UTC)
    """
    if value is None and none_is_now:
        return datetime.now(UTC)
    if isinstance(value, datetime) and not hasattr(value, "nanosecond"):  # plain datetime: fast path
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise _naive(parameter, "datetime", value.isoformat())
        return value.astimezone(UTC)
    import pandas as pd  # pandas is imported by perfkit anyway; keep this module light to import

    kind = type(value).__name__
    hint = ""
    if value is pd.NaT:
        raise ValidationError(f"{parameter} is not a time (NaT)", parameter=parameter)
    if isinstance(value, str):
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{parameter} {_short(value)} is not an ISO 8601 time",
                                  parameter=parameter) from exc
        kind = "ISO string"
        hint = " (add an offset such as 'Z' or '+00:00')"
    elif isinstance(value, np.datetime64):
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError) as exc:  # out of the representable range
            raise ValidationError(f"{parameter} {_short(value)} is out of range: {exc}",
                                  parameter=parameter) from exc
        kind = "numpy.datetime64"
        hint = " (numpy datetimes carry no timezone: pass pd.Timestamp(value, tz='UTC') if it is UTC)"
    elif isinstance(value, pd.Timestamp):
        ts = value
        kind = "pandas.Timestamp"
        hint = " (use Timestamp.tz_localize)"
    elif isinstance(value, date) and not isinstance(value, datetime):
        raise InputTypeError(
            f"{parameter} must be a datetime, got the date {value.isoformat()} (a day has no single time)",
            parameter=parameter,
        )
    else:
        raise InputTypeError(f"{parameter} must be a datetime, got {kind}", parameter=parameter)
    if ts is pd.NaT:
        raise ValidationError(f"{parameter} is not a time (NaT): {_short(value)}", parameter=parameter)
    if ts.tzinfo is None:
        raise _naive(parameter, kind, ts.isoformat(), hint)
    return ts.tz_convert("UTC").to_pydatetime(warn=False).astimezone(UTC)


def _naive(parameter: str, kind: str, text: str, hint: str = "") -> ValidationError:
    hint = hint or " (e.g. datetime.now(timezone.utc), or attach a tzinfo)"
    return ValidationError(f"{parameter} must be timezone-aware, got naive {kind} {text}{hint}",
                           parameter=parameter)


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------
def check_metadata(value: Any, parameter: str = "metadata") -> dict[str, Any]:
    """Check user metadata and return a plain, JSON-serializable copy.

    Accepted: a mapping whose keys are ``str`` (other keys are refused rather than turned
    into text, which would not round-trip) and whose values are ``None``,
    ``str``, ``bool``, finite numbers (numpy scalars included, converted to Python numbers),
    ``datetime`` objects (kept; the store encodes them), lists / tuples (copied as lists)
    and such mappings, nested at most :data:`MAX_METADATA_DEPTH` (64) levels deep. Checked
    without recursion, so a 5,000-deep document is a clean error, not a ``RecursionError``.

    Returns
    -------
    dict
        ``{}`` for ``None``.

    Raises
    ------
    InputTypeError
        ``value`` is not a mapping.
    ValidationError
        NaN / inf, an unsupported type, a bad key, or nesting too deep; the message gives
        the path (``metadata['a'][0]``).

    Examples
    --------
    >>> check_metadata({"n": np.int64(3), "tags": ("a", "b"), "none": None})
    {'n': 3, 'tags': ['a', 'b'], 'none': None}
    >>> check_metadata({"x": float("nan")})
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ValidationError: metadata['x'] is NaN or infinite; metadata must be JSON-serializable
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputTypeError(f"{parameter} must be a dict, got {type(value).__name__}", parameter=parameter)
    root: dict[str, Any] = {}
    # (source container, its copy, path text, depth): an explicit stack, no recursion
    stack: list[tuple[Any, Any, str, int]] = [(value, root, parameter, 1)]
    while stack:
        src, dst, path, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValidationError(
                f"{parameter} is nested more than {MAX_METADATA_DEPTH} levels deep (at {path[:80]}...)",
                parameter=parameter,
            )
        items = src.items() if isinstance(src, Mapping) else enumerate(src)
        for key, item in items:
            if isinstance(src, Mapping) and not isinstance(key, str):
                # not turned into text silently: {1: ...} would come back as {"1": ...}
                raise ValidationError(
                    f"{path} has a key of type {type(key).__name__} ({_short(key)}); JSON keys must be str",
                    parameter=parameter,
                )
            out_key = key
            where = f"{path}[{out_key!r}]"
            if isinstance(item, Mapping):
                child: Any = {}
                stack.append((item, child, where, depth + 1))
            elif isinstance(item, (list, tuple)):
                child = [None] * len(item)
                stack.append((item, child, where, depth + 1))
            else:
                child = _scalar(item, where, parameter)
            dst[out_key] = child
    return root


def _scalar(item: Any, where: str, parameter: str) -> Any:
    if item is None or isinstance(item, (str, bool)):
        return item
    if isinstance(item, np.bool_):
        return bool(item)
    if isinstance(item, numbers.Integral):
        return int(item)
    if isinstance(item, numbers.Real):
        f = float(item)
        if not math.isfinite(f):
            raise ValidationError(f"{where} is NaN or infinite; {parameter} must be JSON-serializable",
                                  parameter=parameter)
        return f
    if isinstance(item, datetime):
        return item
    raise ValidationError(
        f"{where} holds a {type(item).__name__}, which is not JSON-serializable "
        "(use dicts, lists, str, int, float, bool, None or datetime)",
        parameter=parameter,
    )


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_USERINFO = re.compile(r"^([^:/@?#]*)(:[^@]*)?@")
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential", re.IGNORECASE)


def mask_url(url: Any, *, keep_path: bool = True) -> str:
    """A URL safe to show in messages, logs, notebooks and reports.

    Store URLs (``keep_path=True``, the default) keep scheme, user, host, port, database
    and query, but the password becomes ``***`` (``user:***@host``) and so do the values of
    query parameters that look secret (``password=``, ``token=``, ``sslkey=`` ...). Webhook
    URLs (``keep_path=False``) are reduced to ``scheme://host[:port]``: their path and query
    usually *are* the token; without a scheme nothing of them is shown. Plain file paths are
    returned as they are (a ``user:password@`` in them is still masked). Malformed URLs never
    raise and never show more than the well-formed case would.

    Parameters
    ----------
    url : str or path-like
    keep_path : bool, default True

    Returns
    -------
    str

    Examples
    --------
    >>> mask_url("postgresql+psycopg://perf:s3cret@db.example.org:5432/perf?sslmode=require")
    'postgresql+psycopg://perf:***@db.example.org:5432/perf?sslmode=require'
    >>> mask_url("https://hooks.example.org/services/T000/B000/XXXX?token=1", keep_path=False)
    'https://hooks.example.org'
    >>> mask_url("data/perf.db")
    'data/perf.db'
    """
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    m = _SCHEME.match(url)
    if m is None:
        if not keep_path:  # a webhook URL without a scheme: any part of it may be the token
            return "<invalid URL>"
        if "://" in url:  # a broken scheme: show nothing but the masked rest
            head, _, rest = url.partition("://")
            return f"{head}://" + _mask_text(rest)
        # a plain path is shown as it is; "user:pw@host/db" without a scheme is still masked
        return _mask_text(url) if "@" in url else url
    scheme = m.group(1)
    if not keep_path:
        return _origin(url, scheme)
    rest = url[len(scheme) + 3:]
    if rest.count("@") > 1:  # an unencoded '@' in the password: mask up to the last '@'
        user, _, tail = rest.rpartition("@")
        name = user.split(":", 1)[0]
        return f"{scheme}://{name}:***@" + _mask_text("x@" + tail)[2:] if ":" in user else \
            f"{scheme}://***@" + _mask_text("x@" + tail)[2:]
    try:
        import sqlalchemy as sa

        parsed = sa.make_url(url)
        query = {k: ("***" if _SECRET_KEY.search(k) else v) for k, v in parsed.query.items()}
        return parsed.set(query=query).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any parse failure: fall back to the textual rule below
        return f"{scheme}://" + _mask_text(url[len(scheme) + 3:])


_URL_PASSWORD_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*):[^/?#@\s]*@")


def mask_urls_in_text(text: str) -> str:
    """Mask the password of every URL inside a free text (``user:***@host``).

    For messages that quote a URL among other words (errors of drivers, CLI output).

    Examples
    --------
    >>> mask_urls_in_text("cannot open postgresql://perf:s3cret@db:5432/perf: refused")
    'cannot open postgresql://perf:***@db:5432/perf: refused'
    """
    return _URL_PASSWORD_IN_TEXT.sub(r"\1:***@", text)


def _origin(url: str, scheme: str) -> str:
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"{scheme}://<invalid host>"
    if not host:
        return f"{scheme}://"
    if any(not ch.isprintable() or ch.isspace() for ch in host):
        return f"{scheme}://<invalid host>"
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _mask_text(rest: str) -> str:
    """Mask the password of ``user:password@...`` and secret query values, textually."""
    u = _USERINFO.match(rest)
    if u is not None:
        rest = u.group(1) + (":***" if u.group(2) is not None else "") + "@" + rest[u.end():]
    base, sep, query = rest.partition("?")
    if sep:
        pairs = []
        for pair in query.split("&"):
            key, eq, val = pair.partition("=")
            pairs.append(f"{key}{eq}***" if eq and _SECRET_KEY.search(key) else pair)
        rest = base + "?" + "&".join(pairs)
    return rest
