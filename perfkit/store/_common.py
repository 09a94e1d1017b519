"""Shared pieces of the SQL store: engine and URL set-up, column lists, row helpers."""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.resources
import json
import logging
import math
import operator
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from perfkit.exceptions import (
    ValidationError,
)
from perfkit.store.records import (
    ALL_SEGMENTS,
    BatchRecord,
    check_name,
    decode_json,
    encode_json,
    to_utc,
)
from perfkit.store.schema import (
    batches,
    metadata,
)

if TYPE_CHECKING:
    import pandas as pd


logger = logging.getLogger("perfkit")

DEFAULT_URL = "sqlite:///data/performance/perfkit.db"
"""Store URL used when none is given (relative to the current working directory)."""

HISTORY_COLUMNS: tuple[str, ...] = (
    "id",
    "batch_id",
    "model",
    "model_version",
    "segment",
    "timestamp",
    "task",
    "sample_count",
    "performance_score",
    "labels_pending",
    "metadata",
)
"""Fixed columns of :meth:`Store.history`; metric columns follow."""

METRICS_FRAME_COLUMNS: tuple[str, ...] = (
    "batch_id",
    "timestamp",
    "segment",
    "metric",
    "value",
    "ci_lower",
    "ci_upper",
    "se",
    "reason",
)
"""Columns of :meth:`Store.metrics_frame`."""

BASELINE_COLUMNS: tuple[str, ...] = (
    "id",
    "model",
    "segment",
    "model_version",
    "version",
    "source",
    "sample_count",
    "created_at",
    "metrics",
)
"""Columns of :meth:`Store.baselines`."""

ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id",
    "model",
    "segment",
    "metric",
    "alert_type",
    "severity",
    "timestamp",
    "batch_id",
    "status",
    "suppressed_by",
    "created_at",
    "payload",
    "deliveries",
)
"""Columns of :meth:`Store.alerts`."""

_SCHEMA_LOCK_KEY = 7_263_521_001  # PostgreSQL advisory lock serialising migrations
_PERFKIT_TABLES = frozenset(metadata.tables)
_json_dumps = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))


try:  # optional: about 3x faster parsing of large states
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def _dumps(value: Any) -> str:
    """Serialise a JSON cell (compact; strict: non-finite floats raise ``ValueError``).

    Cells are :func:`encode_json` output, whose floats are finite; orjson writes them
    (several times faster than the standard library) after a check that keeps the strict
    contract, and anything orjson refuses (integers beyond 64 bits, ...) goes through
    :func:`json.dumps`. Both parse back to the same value.
    """
    if _orjson is not None and _all_finite(value):
        try:
            return _orjson.dumps(value).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return _json_dumps(value)


def _all_finite(value: Any) -> bool:
    """No NaN / infinity anywhere in ``value`` (which orjson would write as null)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(_all_finite(v) for v in value.values() if type(v) is not str)
    if kind is list:
        return all(_all_finite(v) for v in value if type(v) is not str)
    if kind in (str, int, bool) or value is None:
        return True
    return False  # anything else: the standard library decides


def _loads(text: str | bytes) -> Any:
    """Parse a JSON cell; undo :func:`encode_json` tags only when the text has one."""
    if _orjson is not None:
        try:
            value = _orjson.loads(text)
        except _orjson.JSONDecodeError:  # e.g. integers beyond 64 bits
            value = json.loads(text)
    else:
        value = json.loads(text)
    # "$" is rare in stored JSON (never in base64), so a one-byte scan rules tags out quickly
    if (b"$" if isinstance(text, bytes) else "$") in text and (b'"$' if isinstance(text, bytes) else '"$') in text:
        return decode_json(value)
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FREQ_UNITS = {"d": "days", "h": "hours", "min": "minutes", "s": "seconds"}
_FREQ_RE = re.compile(r"\s*(\d+(?:\.\d*)?)?\s*(d|h|min|s)\s*", re.IGNORECASE)


def _parse_freq(freq: Any) -> timedelta:
    """``"7D"`` / ``"6h"`` / ``"30min"`` / ``"90s"`` or a timedelta -> positive timedelta."""
    step = None
    if isinstance(freq, timedelta):
        step = freq
    elif isinstance(freq, str) and (match := _FREQ_RE.fullmatch(freq)):
        number, unit = match.groups()
        step = timedelta(**{_FREQ_UNITS[unit.lower()]: float(number or 1)})
    if step is None or step <= timedelta(0):
        raise ValidationError(
            f"freq must be a positive timedelta or a string like '7D', '6h', '30min', "
            f"'90s', got {freq!r}",
            parameter="freq",
        )
    return step


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are built.

    Parsed JSON has no reference cycles, but the collector's passes over the growing
    set of live dicts and lists cost as much as the parsing itself on a year of states.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_time_id = operator.itemgetter(0, 1)
_row_time_id = operator.attrgetter("timestamp", "id")


def _sqlite_time(text: str) -> datetime:
    """Parse the naive UTC text SQLite holds (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    if len(text) == 26:  # SQLAlchemy's format: the offset parsed with it (6x faster than .replace)
        return datetime.fromisoformat(text + "+00:00")
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _seg(segment: str | None) -> str:
    return "" if segment is None else segment


def _unseg(segment: str) -> str | None:
    return None if segment == "" else segment


def _check_name(value: Any, parameter: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    check_name(value, parameter)


def mask_urls(text: str) -> str:
    """Mask the password of every URL in ``text``: :func:`perfkit._checks.mask_urls_in_text`.

    >>> mask_urls("cannot reach postgresql://bob:hunter2@db:5432/perf")
    'cannot reach postgresql://bob:***@db:5432/perf'
    """
    from perfkit._checks import mask_urls_in_text

    return mask_urls_in_text(text)


def _migrations_location() -> str:
    return str(importlib.resources.files("perfkit.store") / "migrations")


@functools.cache
def _migration_scripts() -> Any:
    """The Alembic script directory, read once per process (every store open needs its head)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(_migrations_location())


def _make_engine(url: sa.URL, echo: bool, *, read_only: pathlib.Path | None = None) -> sa.Engine:
    kwargs: dict[str, Any] = {
        "echo": echo,
        "json_serializer": _dumps,
        "json_deserializer": _loads,
    }
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 20.0}
        if read_only is not None:
            # a read-only file (or directory): open it through a read-only URI; without
            # write access to the directory SQLite cannot create the WAL index, so the
            # file is opened as immutable (a consistent snapshot of a store nobody writes)
            import sqlite3
            import urllib.parse

            flags = "mode=ro" if os.access(read_only.parent, os.W_OK) else "immutable=1"
            uri = f"file:{urllib.parse.quote(str(read_only.resolve()))}?{flags}"
            kwargs["creator"] = lambda: sqlite3.connect(uri, uri=True, timeout=20.0, check_same_thread=False)
    else:
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_read_only_on_connect if read_only else _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions itself; ``_sqlite_on_begin`` emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=20000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_read_only_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=20000")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    mode = conn.get_execution_options().get("perfkit_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _time_bound(value: datetime | None, parameter: str) -> datetime | None:
    return None if value is None else to_utc(value, parameter)


# ---------------------------------------------------------------------- helpers
def _filters(
    table: sa.Table,
    model: str | None,
    segment: Any,
    start: datetime | None,
    end: datetime | None,
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if model is not None:
        _check_name(model, "model")
        clauses.append(table.c.model == model)
    if segment is not ALL_SEGMENTS:
        _check_name(segment, "segment", optional=True)
        clauses.append(table.c.segment == _seg(segment))
    start = _time_bound(start, "start")
    end = _time_bound(end, "end")
    if start is not None:
        clauses.append(table.c.timestamp >= start)
    if end is not None:
        clauses.append(table.c.timestamp < end)
    return clauses


def _key_clause(model: str, segment: str | None, batch_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        batches.c.model == model,
        batches.c.segment == _seg(segment),
        batches.c.batch_id == batch_id,
    )


def _batch_row(record: BatchRecord, now: datetime) -> dict[str, Any]:
    return {
        "model": record.model,
        "segment": _seg(record.segment),
        "batch_id": record.batch_id,
        "model_version": record.model_version,
        "timestamp": record.timestamp,
        "task": record.task,
        "sample_count": record.sample_count,
        "performance_score": record.performance_score,
        "labels_pending": record.labels_pending,
        "state": encode_json(record.state, "state"),
        "metrics": record.metrics,
        "metadata": encode_json(record.metadata, "metadata"),
        "created_at": now,
        "updated_at": now,
    }


def _trusted(cls: type, base: Any = None, /, **values: Any) -> Any:
    """Build a frozen dataclass without re-running validation (values are trusted)."""
    obj = object.__new__(cls)
    if base is not None:
        if isinstance(base, _StoredBatchRecord):
            base.state  # noqa: B018 - parse a lazily read state before copying the fields
        obj.__dict__.update(base.__dict__)
        obj.__dict__.pop(_STATE_TEXT, None)
    obj.__dict__.update(values)
    return obj


_STATE_TEXT = "_state_text"


class _StoredBatchRecord(BatchRecord):
    """A :class:`BatchRecord` read from the store whose ``state`` is parsed on first access.

    Summaries and charts of long histories read the metric values of every batch but need
    the (large) states only to merge windows, which parse them without keeping them
    (:meth:`Store.merged_state`). Equal to (and printed as) the eagerly read record.
    """

    __qualname__ = "BatchRecord"

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        if name != "state" or _STATE_TEXT not in d:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        d["state"] = _loads(d.pop(_STATE_TEXT))
        return d["state"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchRecord):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in BatchRecord.__dataclass_fields__)

    __hash__ = BatchRecord.__hash__

    def __reduce__(self) -> Any:  # pickled as the plain record
        self.state  # noqa: B018
        return _trusted_record, (dict(self.__dict__),)


def _trusted_record(values: dict[str, Any]) -> BatchRecord:
    return _trusted(BatchRecord, **values)


def _state_text(record: BatchRecord) -> str | None:
    """The stored JSON text of a lazily read record's state, None once it is parsed."""
    return record.__dict__.get(_STATE_TEXT)


def _record_from_row(row: Any, *, text: bool = False) -> BatchRecord:
    """The record of a row; ``text=True``: a PostgreSQL row read with :func:`_pg_text_columns`,
    whose metrics are parsed here and whose state is parsed on access (as on SQLite)."""
    state = {"_state_text": row.state} if text else {"state": row.state}
    return _trusted(
        _StoredBatchRecord if text else BatchRecord,
        **state,
        model=row.model,
        timestamp=row.timestamp,
        task=row.task,
        metrics=_loads(row.metrics) if text else row.metrics,
        sample_count=row.sample_count,
        batch_id=row.batch_id,
        segment=_unseg(row.segment),
        model_version=row.model_version,
        performance_score=row.performance_score,
        labels_pending=bool(row.labels_pending),
        metadata=row.metadata,
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _pg_text_columns(table: sa.Table) -> list[Any]:
    """PostgreSQL: the table's columns with the large JSON payloads (``state``, ``metrics``:
    ``json``, see :func:`perfkit.store.schema.text_json_type`) read as their stored text."""
    return [sa.cast(c, sa.Text).label(c.name) if c.name in ("state", "metrics") else c for c in table.c]


_TEXT_JSON = ("state", "metrics", "metadata")
_TEXT_TIME = ("timestamp", "created_at", "updated_at")


def _text_columns(table: sa.Table) -> list[Any]:
    """SQLite: the table's columns with JSON and times read as raw text (parsed in bulk by
    :func:`_record_from_text_row`, without SQLAlchemy's per-value processors)."""
    return [sa.type_coerce(c, sa.Text).label(c.name) if c.name in _TEXT_JSON
            else sa.type_coerce(c, sa.String).label(c.name) if c.name in _TEXT_TIME else c
            for c in table.c]


_FIELDS = ("state", "model", "timestamp", "task", "metrics", "sample_count", "batch_id", "segment",
           "model_version", "performance_score", "labels_pending", "metadata", "id", "created_at",
           "updated_at")


def _text_row_fields(at: dict[str, int]) -> Callable[[Any], tuple]:
    """The getter of a SQLite row's :data:`_FIELDS` (``at``: column positions by name), for
    :func:`_record_from_text_row`."""
    return operator.itemgetter(*(at[k] for k in _FIELDS))


def _record_from_text_row(fields: tuple) -> BatchRecord:
    """The record of a SQLite row read with :func:`_text_columns`, its :data:`_FIELDS` taken
    by :func:`_text_row_fields` (the state is parsed on access)."""
    (state, model, ts, task, metrics, n, batch_id, segment, version, score, pending, meta, id_, created,
     updated) = fields
    return _trusted(
        _StoredBatchRecord,
        _state_text=state,
        model=model,
        timestamp=_sqlite_time(ts),
        task=task,
        metrics=None if metrics is None else _loads(metrics),
        sample_count=n,
        batch_id=batch_id,
        segment=_unseg(segment),
        model_version=version,
        performance_score=score,
        labels_pending=bool(pending),
        metadata=None if meta is None else {} if meta == "{}" else _loads(meta),
        id=id_,
        created_at=None if created is None else _sqlite_time(created),
        updated_at=None if updated is None else _sqlite_time(updated),
    )


def _keep_none(frame: pd.DataFrame, columns: Iterable[str], data: dict[str, list]) -> None:
    """Give nullable text columns object dtype so missing values stay ``None``.

    (pandas 3 infers its ``str`` dtype, which turns ``None`` into NaN.)
    """
    import pandas as pd

    for column in columns:
        frame[column] = pd.Series(data[column], index=frame.index, dtype=object)
