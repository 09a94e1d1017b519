"""The SQL history store: batches, baselines and alerts in SQLite or PostgreSQL.

One :class:`Store` class serves both databases through SQLAlchemy Core. Every write is
one transaction. On SQLite the store uses WAL, ``synchronous=NORMAL``, a 20 s busy
timeout, foreign keys, and takes the write lock at the start of a write transaction
(``BEGIN IMMEDIATE``) so several processes can append at once without
"database is locked" errors.

The schema is managed by Alembic (scripts in ``perfkit/store/migrations``):

* an empty database gets the schema when opened with ``create=True``;
* an older schema is upgraded when ``auto_upgrade`` is true (the default on SQLite,
  where the store is a local file owned by perfkit). On PostgreSQL the default is
  ``False``: a shared server is upgraded on purpose, with ``auto_upgrade=True``;
* a schema revision this perfkit does not know (written by a newer perfkit) raises
  :class:`~perfkit.exceptions.SchemaVersionError`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.resources
import json
import logging
import math
import numbers
import operator
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from perfkit.exceptions import (
    ConfigError,
    InputTypeError,
    RecordNotFoundError,
    SchemaVersionError,
    StoreError,
    ValidationError,
)
from perfkit.store import _outbox, _tracking
from perfkit.store.records import (
    ALL_SEGMENTS,
    BaselineRecord,
    BatchRecord,
    check_name,
    decode_json,
    encode_json,
    normalize_metrics,
    to_utc,
)
from perfkit.store.schema import (
    ALERT_STATUSES,
    DELIVERY_STATUSES,
    VERSION_TABLE,
    alert_deliveries,
    alerts,
    baselines,
    batches,
    metadata,
)

if TYPE_CHECKING:
    import pandas as pd

    from perfkit.metrics.state import State

__all__ = [
    "ALERT_COLUMNS",
    "BASELINE_COLUMNS",
    "DEFAULT_URL",
    "HISTORY_COLUMNS",
    "METRICS_FRAME_COLUMNS",
    "Store",
    "open_store",
]

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
_dumps = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))


try:  # optional: about 3x faster parsing of large states
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def _loads(text: str | bytes) -> Any:
    """Parse a JSON cell; undo :func:`encode_json` tags only when the text has one."""
    if _orjson is not None:
        try:
            value = _orjson.loads(text)
        except _orjson.JSONDecodeError:  # e.g. integers beyond 64 bits
            value = json.loads(text)
    else:
        value = json.loads(text)
    if (b'"$' if isinstance(text, bytes) else '"$') in text:
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


_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def mask_urls(text: str) -> str:
    """Mask the password of every URL in ``text`` (``user:***@host``).

    >>> mask_urls("cannot reach postgresql://bob:hunter2@db:5432/perf")
    'cannot reach postgresql://bob:***@db:5432/perf'
    """
    return _URL_PASSWORD.sub(r"\1:***@", text)


def _migrations_location() -> str:
    return str(importlib.resources.files("perfkit.store") / "migrations")


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


class Store:
    """A durable history of batch records, baselines and alerts.

    Parameters
    ----------
    url : str or pathlib.Path, optional
        SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://user@host/db``) or a
        path to a SQLite file. Default :data:`DEFAULT_URL`, relative to the working
        directory; the parent directory of a SQLite file is created when ``create``.
    create : bool, default True
        Create the schema in an empty database. With ``False`` a database without a
        perfkit schema (or a missing SQLite file) raises :class:`StoreError`.
    echo : bool, default False
        Log every SQL statement (SQLAlchemy's ``echo``).
    auto_upgrade : bool, optional
        Migrate an older schema to the current one on open. Default: True on SQLite,
        False on other databases.

    Raises
    ------
    ConfigError
        If ``url`` is not a valid URL or names an unsupported database.
    SchemaVersionError
        If the schema revision is unknown (newer perfkit) or older and ``auto_upgrade``
        is false.
    StoreError
        If the database cannot be opened.

    Notes
    -----
    Segments: ``segment=None`` is the whole population and is stored as ``''`` so that
    the unique key ``(model, segment, batch_id)`` works on both databases. Query methods
    take ``segment=ALL_SEGMENTS`` (default, every segment) or ``None`` / a name.
    Time filters are inclusive at ``start`` and exclusive at ``end``; both must be
    timezone-aware.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from perfkit.store import BatchRecord, Store
    >>> with Store("sqlite://") as store:
    ...     saved = store.append(BatchRecord(
    ...         "churn", datetime(2024, 5, 1, 12, tzinfo=timezone.utc), "binary",
    ...         state={"tp": 3, "fn": 1}, metrics={"recall": {"value": 0.75}},
    ...         sample_count=4, batch_id="b1"))
    ...     print(saved.id, store.count(), store.get("churn", "b1").metrics["recall"]["value"])
    ...     frame = store.history("churn")
    1 1 0.75
    >>> frame.loc[0, "timestamp"], frame.loc[0, "recall"]
    (Timestamp('2024-05-01 12:00:00+0000', tz='UTC'), np.float64(0.75))
    """

    def __init__(
        self,
        url: str | pathlib.Path | None = None,
        *,
        create: bool = True,
        echo: bool = False,
        auto_upgrade: bool | None = None,
    ) -> None:
        if url is None:
            url = DEFAULT_URL
        if isinstance(url, os.PathLike):
            url = f"sqlite:///{os.fspath(url)}"
        elif isinstance(url, str) and "://" not in url and url:
            url = f"sqlite:///{url}"  # a plain path is a SQLite file
        if not isinstance(url, str):
            raise InputTypeError(
                f"url must be a str, a pathlib.Path or None, got {type(url).__name__}",
                parameter="url",
            )
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(
                f"url {mask_urls(url)!r} is not a valid SQLAlchemy URL: {mask_urls(str(exc))}"
            ) from None
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"url {parsed.render_as_string(hide_password=True)!r} names database "
                f"{backend!r}; perfkit stores support 'sqlite' and 'postgresql'"
            )
        read_only_path = None
        if backend == "sqlite":
            database = parsed.database or ""
            if database not in ("", ":memory:") and not database.startswith("file:"):
                path = pathlib.Path(database)
                if path.exists() and not os.access(path, os.W_OK):
                    read_only_path = path
                elif create:
                    path.parent.mkdir(parents=True, exist_ok=True)
                elif not path.exists():
                    raise StoreError(f"no perfkit store at {path} (open it with create=True)")
        self.url = parsed.render_as_string(hide_password=True)
        self.read_only = read_only_path is not None
        self._engine = _make_engine(parsed, echo, read_only=read_only_path)
        self.dialect = self._engine.dialect.name
        self.auto_upgrade = (self.dialect == "sqlite") if auto_upgrade is None else auto_upgrade
        try:
            if self.read_only:
                self._check_schema_read_only()
            else:
                self._prepare_schema(create=create)
        except BaseException:
            self._engine.dispose()
            raise

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every connection of the store (it can be reopened by a new Store)."""
        self._engine.dispose()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (read-only use is safe; writes should use the methods)."""
        return self._engine

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A connection in a write transaction (SQLite: ``BEGIN IMMEDIATE``)."""
        if self.read_only:
            raise StoreError(f"store {self.url} is read-only (the file is not writable): nothing was written")
        with self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(perfkit_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A connection in a read transaction (one consistent snapshot)."""
        with self._engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn database errors into :class:`StoreError` naming the action and store."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{action} failed on store {self.url}: {mask_urls(str(exc))}") from exc

    def _check_schema_read_only(self) -> None:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(_migrations_location()).get_current_head()
        with self._errors("opening the store"), self._read() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current != head:
            raise SchemaVersionError(
                f"read-only store {self.url} has schema revision {current!r} (expected {head!r}); "
                "it cannot be migrated without write access"
            )

    def _prepare_schema(self, *, create: bool) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from alembic.util.exc import CommandError

        location = _migrations_location()
        script = ScriptDirectory(location)
        head = script.get_current_head()
        with self._errors("opening the store"), self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            current = context.get_current_revision()
            if current == head:
                return
            if current is None:
                found = _PERFKIT_TABLES & set(sa.inspect(conn).get_table_names())
                if found:
                    raise SchemaVersionError(
                        f"store {self.url} has perfkit tables {sorted(found)} but no schema "
                        f"revision in {VERSION_TABLE}; expected revision {head!r}"
                    )
                if not create:
                    raise StoreError(
                        f"store {self.url} has no perfkit schema (open it with create=True)"
                    )
                logger.info("creating perfkit store schema %s in %s", head, self.url)
            else:
                try:
                    known = script.get_revision(current) is not None
                except CommandError:
                    known = False
                if not known:
                    raise SchemaVersionError(
                        f"store {self.url} has schema revision {current!r}, which this perfkit "
                        f"does not know (expected {head!r}); it was written by a newer "
                        "perfkit: upgrade perfkit to read it"
                    )
                if not self.auto_upgrade:
                    raise SchemaVersionError(
                        f"store {self.url} has the older schema revision {current!r} "
                        f"(expected {head!r}); open it with auto_upgrade=True to migrate it "
                        "(export_json it first to keep a backup)"
                    )
                logger.info("upgrading perfkit store %s from %s to %s", self.url, current, head)
            config = Config()
            config.set_main_option("script_location", location)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    # ------------------------------------------------------------------ filters
    def _batch_filters(
        self,
        model: str | None,
        segment: Any,
        start: datetime | None,
        end: datetime | None,
    ) -> list[sa.ColumnElement[bool]]:
        return _filters(batches, model, segment, start, end)

    # ------------------------------------------------------------------ batches
    def append(self, record: BatchRecord) -> BatchRecord:
        """Insert one batch record in one transaction.

        Parameters
        ----------
        record : BatchRecord
            The record; ``id``/``created_at``/``updated_at`` are ignored.

        Returns
        -------
        BatchRecord
            The stored record with ``id``, ``created_at`` and ``updated_at`` set.

        Raises
        ------
        StoreError
            If a record with the same ``(model, segment, batch_id)`` exists. Exception:
            when the existing record is ``labels_pending`` and ``record`` is labelled,
            the call is :meth:`complete` (the pending record is replaced).

        Examples
        --------
        >>> from datetime import datetime, timezone
        >>> store = Store("sqlite://")
        >>> r = BatchRecord("m", datetime(2024, 1, 1, tzinfo=timezone.utc), "regression",
        ...                 {"n": 2}, {"mae": 0.5}, 2, batch_id="x")
        >>> store.append(r).id
        1
        >>> store.append(r)
        Traceback (most recent call last):
        ...
        perfkit.exceptions.StoreError: batch 'x' of model 'm' (segment None) is already in the store; batch ids must be unique per model and segment
        >>> store.count()
        1
        """
        if not isinstance(record, BatchRecord):
            raise InputTypeError(
                f"record must be a BatchRecord, got {type(record).__name__}", parameter="record"
            )
        now = _now()
        row = _batch_row(record, now)
        with self._errors("append"):
            try:
                with self._write() as conn:
                    new_id = conn.execute(batches.insert(), row).inserted_primary_key[0]
            except sa.exc.IntegrityError as exc:
                completed = None if record.labels_pending else self._complete(record)
                if completed is None:
                    raise StoreError(
                        f"batch {record.batch_id!r} of model {record.model!r} "
                        f"(segment {record.segment!r}) is already in the store; "
                        "batch ids must be unique per model and segment"
                    ) from exc
                return completed
        return _trusted(BatchRecord, record, id=new_id, created_at=now, updated_at=now)

    def complete(self, record: BatchRecord) -> BatchRecord:
        """Replace a ``labels_pending`` record by its labelled version (one transaction).

        The stored row with the same ``(model, segment, batch_id)`` keeps its ``id`` and
        ``created_at``; everything else comes from ``record``.

        Raises
        ------
        ValidationError
            If ``record.labels_pending`` is true.
        RecordNotFoundError
            If no record with that key exists.
        StoreError
            If the stored record is already labelled.

        Examples
        --------
        >>> from datetime import datetime, timezone
        >>> store = Store("sqlite://")
        >>> ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> pending = store.append(BatchRecord("m", ts, "binary", {}, {}, 10, batch_id="b",
        ...                                    labels_pending=True))
        >>> done = store.complete(BatchRecord("m", ts, "binary", {"tp": 4}, {"recall": 0.8},
        ...                                   10, batch_id="b"))
        >>> done.id == pending.id, done.labels_pending, store.find_pending("m", "b")
        (True, False, None)
        """
        if not isinstance(record, BatchRecord):
            raise InputTypeError(
                f"record must be a BatchRecord, got {type(record).__name__}", parameter="record"
            )
        if record.labels_pending:
            raise ValidationError(
                "record.labels_pending must be False to complete a pending record",
                parameter="record",
            )
        with self._errors("complete"):
            done = self._complete(record)
        if done is not None:
            return done
        existing = self._get_row(record.model, record.batch_id, record.segment)
        if existing is None:
            raise RecordNotFoundError(
                f"no batch {record.batch_id!r} of model {record.model!r} "
                f"(segment {record.segment!r}) to complete"
            )
        raise StoreError(
            f"batch {record.batch_id!r} of model {record.model!r} (segment {record.segment!r}) "
            "already has labels; it cannot be completed again"
        )

    def _complete(self, record: BatchRecord) -> BatchRecord | None:
        now = _now()
        row = _batch_row(record, now)
        del row["created_at"]
        key = _key_clause(record.model, record.segment, record.batch_id)
        with self._write() as conn:
            result = conn.execute(
                batches.update().where(key, batches.c.labels_pending.is_(sa.true())).values(row)
            )
            if result.rowcount == 0:
                return None
            found = conn.execute(sa.select(batches.c.id, batches.c.created_at).where(key)).one()
        return _trusted(BatchRecord, record, id=found.id, created_at=found.created_at,
                        updated_at=now)

    def _get_row(self, model: str, batch_id: str, segment: str | None) -> Any:
        with self._errors("get"), self._read() as conn:
            return conn.execute(
                sa.select(batches).where(_key_clause(model, segment, batch_id))
            ).one_or_none()

    def get(self, model: str, batch_id: str, segment: str | None = None) -> BatchRecord:
        """Return the record with key ``(model, segment, batch_id)``.

        Raises
        ------
        RecordNotFoundError
            If there is no such record.
        """
        row = self._get_row(model, batch_id, segment)
        if row is None:
            raise RecordNotFoundError(
                f"no batch {batch_id!r} of model {model!r} (segment {segment!r}) in {self.url}"
            )
        return _record_from_row(row)

    def find_pending(
        self, model: str, batch_id: str, segment: str | None = None
    ) -> BatchRecord | None:
        """Return the ``labels_pending`` record with that key, or None."""
        row = self._get_row(model, batch_id, segment)
        if row is None or not row.labels_pending:
            return None
        return _record_from_row(row)

    def records(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
        include_pending: bool = True,
    ) -> list[BatchRecord]:
        """Return the matching records ordered by timestamp, then id.

        Parameters
        ----------
        model : str, optional
            Only this model (default: every model).
        segment : str, None or ALL_SEGMENTS
            ``ALL_SEGMENTS`` (default) every segment; ``None`` the unsegmented rows.
        start, end : datetime, optional
            Timezone-aware bounds, ``start <= timestamp < end``.
        include_pending : bool, default True
            Include prediction-only records waiting for labels.
        """
        clauses = self._batch_filters(model, segment, start, end)
        if not include_pending:
            clauses.append(batches.c.labels_pending.is_(sa.false()))
        query = sa.select(batches).where(*clauses)  # sorted here: see states()
        with self._errors("records"), _bulk():
            with self._read() as conn:
                rows = conn.execute(query).all()
            rows.sort(key=_row_time_id)
            return [_record_from_row(row) for row in rows]

    def previous_metrics(
        self,
        model: str,
        *,
        segment: str | None,
        before: BatchRecord,
        limit: int,
    ) -> list[dict]:
        """Metric dicts of the ``limit`` labelled records just before ``before`` (same model and
        segment; ordered by timestamp, then id, oldest first). Used for windowed checks.
        """
        ts = to_utc(before.timestamp, "before")
        earlier = sa.or_(batches.c.timestamp < ts,
                         sa.and_(batches.c.timestamp == ts, batches.c.id < (before.id or 0)))
        query = (
            sa.select(batches.c.metrics)
            .where(batches.c.model == model, batches.c.segment == _seg(segment),
                   batches.c.labels_pending.is_(sa.false()), earlier)
            .order_by(batches.c.timestamp.desc(), batches.c.id.desc())
            .limit(limit)
        )
        with self._errors("previous_metrics"), self._read() as conn:
            rows = conn.execute(query).all()
        return [dict(r.metrics) for r in reversed(rows)]

    def history(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Return one row per batch, with value and interval columns per metric.

        Columns are :data:`HISTORY_COLUMNS` followed, for every metric ``M`` present in
        the records (in alphabetical order: PostgreSQL's JSONB does not keep the key
        order of a record's ``metrics``), by ``M``, ``M_ci_lower``,
        ``M_ci_upper`` and ``M_se`` (NaN where a record has no value). ``timestamp`` is
        UTC-aware; ``segment`` is None for the whole population. Filters as in
        :meth:`records`.
        """
        import pandas as pd

        cols = [c for c in batches.c if c.name in HISTORY_COLUMNS or c.name == "metrics"]
        if self.dialect == "sqlite":  # parse the fixed-width UTC text in bulk below
            cols = [sa.type_coerce(c, sa.String).label("timestamp")
                    if c.name == "timestamp" else c for c in cols]
        query = sa.select(*cols).where(*self._batch_filters(model, segment, start, end))
        with self._errors("history"), _bulk(), self._read() as conn:
            result = conn.execute(query)
            keys = list(result.keys())
            rows = result.all()
        rows.sort(key=operator.itemgetter(keys.index("timestamp"), keys.index("id")))
        columns = dict(zip(keys, zip(*rows, strict=True), strict=True)) if rows else {}
        data: dict[str, list[Any]] = {
            name: list(columns.get(name, ())) for name in HISTORY_COLUMNS
        }
        data["segment"] = [_unseg(s) for s in data["segment"]]
        data["labels_pending"] = [bool(v) for v in data["labels_pending"]]
        all_metrics: list[dict] = list(columns.get("metrics", ()))
        names = sorted(set().union(*all_metrics)) if all_metrics else []
        empty: dict[str, Any] = {}
        metric_data: dict[str, Any] = {}
        for name in names:
            entries = [m.get(name) or empty for m in all_metrics]
            for suffix, key in (("", "value"), ("_ci_lower", "ci_lower"),
                                ("_ci_upper", "ci_upper"), ("_se", "se")):
                metric_data[name + suffix] = pd.array(
                    [e.get(key) for e in entries], dtype="Float64"
                ).to_numpy(dtype="float64", na_value=math.nan)
        frame = pd.DataFrame(data, columns=list(HISTORY_COLUMNS))
        _keep_none(frame, ("model_version", "segment"), data)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        frame["performance_score"] = frame["performance_score"].astype("float64")
        frame["labels_pending"] = frame["labels_pending"].astype(bool)
        if metric_data:
            frame = pd.concat([frame, pd.DataFrame(metric_data, index=frame.index)], axis=1)
        return frame

    def metrics_frame(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Return one row per (batch, metric) with columns :data:`METRICS_FRAME_COLUMNS`.

        Filters as in :meth:`records`; rows ordered by timestamp, id, then metric name.
        """
        import pandas as pd

        query = (
            sa.select(batches.c.batch_id, batches.c.timestamp, batches.c.segment,
                      batches.c.metrics)
            .where(*self._batch_filters(model, segment, start, end))
            .order_by(batches.c.timestamp, batches.c.id)
        )
        with self._errors("metrics_frame"), self._read() as conn:
            rows = conn.execute(query).all()
        out = [
            (row.batch_id, row.timestamp, _unseg(row.segment), name, entry.get("value"),
             entry.get("ci_lower"), entry.get("ci_upper"), entry.get("se"), entry.get("reason"))
            for row in rows
            for name, entry in sorted(row.metrics.items())
        ]
        frame = pd.DataFrame(out, columns=list(METRICS_FRAME_COLUMNS))
        _keep_none(frame, ("segment", "reason"), {
            "segment": [r[2] for r in out], "reason": [r[8] for r in out]})
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        for column in ("value", "ci_lower", "ci_upper", "se"):
            frame[column] = pd.array(frame[column].tolist(), dtype="float64").astype("float64")
        return frame

    def states(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
        include_pending: bool = False,
    ) -> list[tuple[datetime, dict]]:
        """Return ``(timestamp, state)`` of the matching records, by timestamp then id.

        The fast read path for merging long histories: only the two columns are read,
        states are parsed with orjson when it is installed, and no :class:`BatchRecord`
        is built. Filters as in :meth:`records`, except that prediction-only records are
        left out unless ``include_pending``.

        Returns
        -------
        list of (datetime, dict)
            UTC-aware timestamps and state dicts (as given to :meth:`append`).

        Examples
        --------
        >>> from datetime import datetime, timezone
        >>> store = Store("sqlite://")
        >>> ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> _ = store.append(BatchRecord("m", ts, "binary", {"tp": 3}, {}, 3, batch_id="a"))
        >>> _ = store.append(BatchRecord("m", ts, "binary", {}, {}, 3, batch_id="b",
        ...                              labels_pending=True))
        >>> store.states("m")
        [(datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), {'tp': 3})]
        """
        clauses = self._batch_filters(model, segment, start, end)
        if not include_pending:
            clauses.append(batches.c.labels_pending.is_(sa.false()))
        timestamp, state = batches.c.timestamp, batches.c.state
        sqlite = self.dialect == "sqlite"
        if sqlite:  # raw text: parsed below, without SQLAlchemy's per-value processors
            timestamp = sa.type_coerce(timestamp, sa.String)
            state = sa.type_coerce(state, sa.Text)
        # Sorted here, not by the database: across segments SQLite would copy every
        # row, state included, into a temporary B-tree to sort it.
        query = sa.select(timestamp, batches.c.id, state).where(*clauses)
        with self._errors("states"), _bulk():
            with self._read() as conn:
                rows = conn.execute(query).all()
            rows.sort(key=_time_id)
            if not sqlite:
                return [(ts, st) for ts, _, st in rows]
            return [(_sqlite_time(ts), _loads(st)) for ts, _, st in rows]

    def window_states(
        self,
        model: str,
        freq: str | timedelta = "7D",
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, State]]:
        """Merge the labelled states of ``model`` into one state per time window.

        Windows are ``freq`` long and aligned on the Unix epoch, like
        ``Series.dt.floor(freq)`` in pandas (so ``"7D"`` windows start on Thursdays);
        windows without labelled records are left out. Each window is merged with
        :func:`perfkit.metrics.state.merge_dicts_to_state`.

        Parameters
        ----------
        model : str
            The model.
        freq : str or timedelta, default "7D"
            Window length: a positive timedelta or a string such as ``"7D"``, ``"1D"``,
            ``"6h"``, ``"30min"``, ``"90s"``.
        segment, start, end
            Filters as in :meth:`records`; see :meth:`window_state` about
            ``segment=ALL_SEGMENTS``.

        Returns
        -------
        list of (datetime, State)
            Window start (UTC) and merged state, ordered by window start.

        Raises
        ------
        ValidationError
            If ``freq`` is not a positive duration.

        Examples
        --------
        >>> from datetime import datetime, timedelta, timezone
        >>> from perfkit.metrics import compute_state
        >>> store = Store("sqlite://")
        >>> t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> for h in range(0, 72, 12):
        ...     state = compute_state([0, 1, 1], [0, 1, 0]).to_dict()
        ...     _ = store.append(BatchRecord("m", t0 + timedelta(hours=h), "binary",
        ...                                  state, {}, 3, batch_id=f"b{h}"))
        >>> [(w.day, s.n) for w, s in store.window_states("m", "1D")]
        [(1, 6), (2, 6), (3, 6)]
        """
        from perfkit.metrics.state import merge_dicts_to_state

        _check_name(model, "model")
        step = _parse_freq(freq)
        buckets: dict[int, list[dict]] = {}
        with _bulk():
            for ts, state in self.states(model, segment=segment, start=start, end=end):
                buckets.setdefault((ts - _EPOCH) // step, []).append(state)
            return [(_EPOCH + key * step, merge_dicts_to_state(group))
                    for key, group in sorted(buckets.items())]

    def window_state(
        self,
        model: str,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict | None:
        """Merge the states of the matching labelled records into one state.

        Uses :func:`perfkit.metrics.state.merge_dicts_to_state` on :meth:`states`;
        prediction-only records (``labels_pending``) are skipped. Returns the merged
        state as a dict (``State.to_dict()``), or None when nothing matches.

        Note that with ``segment=ALL_SEGMENTS`` the states of every segment *and* the
        unsegmented rows are merged: if the tracker stores a whole-population record
        next to per-segment records for the same batch, pass ``segment=None`` to avoid
        counting rows twice.
        """
        from perfkit.metrics.state import merge_dicts_to_state

        _check_name(model, "model")
        with _bulk():
            states = [state for _, state in self.states(model, segment=segment, start=start,
                                                        end=end)]
            if not states:
                return None
            return merge_dicts_to_state(states).to_dict()

    def count(self, model: str | None = None) -> int:
        """Return the number of batch records (of ``model``, or of every model)."""
        query = sa.select(sa.func.count()).select_from(batches)
        if model is not None:
            query = query.where(batches.c.model == model)
        with self._errors("count"), self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def models(self) -> list[str]:
        """Return the sorted names of the models with batch records."""
        query = sa.select(batches.c.model).distinct().order_by(batches.c.model)
        with self._errors("models"), self._read() as conn:
            return list(conn.execute(query).scalars())

    def segments(self, model: str) -> list[str | None]:
        """Return the segments of ``model`` (None, the whole population, first; then sorted)."""
        query = (
            sa.select(batches.c.segment)
            .where(batches.c.model == model)
            .distinct()
            .order_by(batches.c.segment)
        )
        with self._errors("segments"), self._read() as conn:
            return [_unseg(s) for s in conn.execute(query).scalars()]

    def delete_older_than(self, days: float, *, now: datetime | None = None, model: str | None = None,
                          keep_undelivered: bool = False) -> int:
        """Delete batches and alerts with a timestamp older than ``days`` before ``now``.

        Baselines are kept. Alert deliveries go with their alert; ``suppressed_by``
        references to a deleted alert are cleared. ``model`` limits the deletion to one
        model; ``keep_undelivered`` keeps alerts with a pending or failed delivery. See
        :meth:`apply_retention` for the counts of everything deleted.

        Returns
        -------
        int
            The number of batch records deleted.

        Examples
        --------
        >>> from datetime import datetime, timedelta, timezone
        >>> store = Store("sqlite://")
        >>> now = datetime(2024, 6, 1, tzinfo=timezone.utc)
        >>> for age in (1, 40, 400):
        ...     _ = store.append(BatchRecord("m", now - timedelta(days=age), "binary", {}, {},
        ...                                  1, batch_id=f"b{age}"))
        >>> store.delete_older_than(30, now=now), store.count()
        (2, 1)
        """
        return self.apply_retention(days, now=now, model=model, keep_undelivered=keep_undelivered)["batches"]

    def apply_retention(self, days: float, *, model: str | None = None, keep_undelivered: bool = True,
                        now: datetime | None = None) -> dict[str, int]:
        """Delete what is older than ``days`` (of ``model``, or of every model when None).

        Alerts whose delivery is still pending or failed are kept unless
        ``keep_undelivered=False``. Returns the counts: ``{"batches": ..., "alerts": ...,
        "undelivered_alerts_kept": ...}``.
        """
        if (
            isinstance(days, bool)
            or not isinstance(days, numbers.Real)
            or not math.isfinite(days)
            or days < 0
        ):
            raise ValidationError(f"days must be a number >= 0, got {days!r}", parameter="days")
        _check_name(model, "model", optional=True)
        now = _now() if now is None else to_utc(now, "now")
        cutoff = now - timedelta(days=float(days))
        batch_where = [batches.c.timestamp < cutoff]
        alert_where = [alerts.c.timestamp < cutoff]
        if model is not None:
            batch_where.append(batches.c.model == model)
            alert_where.append(alerts.c.model == model)
        undelivered = alerts.c.status.in_(("pending", "failed"))
        kept_query = sa.select(sa.func.count()).select_from(alerts).where(*alert_where, undelivered)
        if keep_undelivered:
            alert_where.append(~undelivered)
        old_alerts = sa.select(alerts.c.alert_id).where(*alert_where)
        with self._errors("apply_retention"), self._write() as conn:
            kept = int(conn.execute(kept_query).scalar_one()) if keep_undelivered else 0
            deleted = conn.execute(batches.delete().where(*batch_where)).rowcount
            conn.execute(
                alerts.update()
                .where(alerts.c.suppressed_by.in_(old_alerts))
                .values(suppressed_by=None)
            )
            conn.execute(
                alert_deliveries.delete().where(alert_deliveries.c.alert_id.in_(old_alerts))
            )
            n_alerts = conn.execute(alerts.delete().where(*alert_where)).rowcount
        logger.info(
            "deleted %d batch records and %d alerts older than %s from %s (model %s; %d undelivered alerts kept)",
            deleted, n_alerts, cutoff.isoformat(), self.url, model or "all", kept,
        )
        return {"batches": int(deleted), "alerts": int(n_alerts), "undelivered_alerts_kept": kept}

    # ------------------------------------------------------------------ baselines
    def set_baseline(
        self,
        model: str,
        state: dict,
        metrics: dict,
        *,
        segment: str | None = None,
        model_version: str | None = None,
        source: str,
        sample_count: int,
        created_at: datetime | None = None,
    ) -> int:
        """Store a new baseline version for ``(model, segment)``.

        Returns
        -------
        int
            The new version number (1 for the first baseline of that model and segment).

        Examples
        --------
        >>> store = Store("sqlite://")
        >>> store.set_baseline("m", {"tp": 5}, {"recall": 0.9}, source="reference",
        ...                    sample_count=100)
        1
        >>> store.set_baseline("m", {"tp": 6}, {"recall": 0.8}, source="reference",
        ...                    sample_count=120)
        2
        >>> store.get_baseline("m", segment="EU").version  # falls back to the unsegmented one
        2
        """
        _check_name(model, "model")
        _check_name(segment, "segment", optional=True)
        _check_name(model_version, "model_version", optional=True)
        _check_name(source, "source")
        if not isinstance(state, dict):
            raise InputTypeError(f"state must be a dict, got {type(state).__name__}",
                                 parameter="state")
        if (
            isinstance(sample_count, bool)
            or not isinstance(sample_count, numbers.Integral)
            or sample_count < 0
        ):
            raise ValidationError(
                f"sample_count must be an int >= 0, got {sample_count!r}", parameter="sample_count"
            )
        row = {
            "model": model,
            "segment": _seg(segment),
            "model_version": model_version,
            "source": source,
            "sample_count": int(sample_count),
            "state": encode_json(state, "state"),
            "metrics": normalize_metrics(metrics),
            "created_at": _now() if created_at is None else to_utc(created_at, "created_at"),
        }
        latest = (
            sa.select(sa.func.max(baselines.c.version))
            .where(baselines.c.model == model, baselines.c.segment == row["segment"])
        )
        for attempt in range(20):
            try:
                with self._errors("set_baseline"), self._write() as conn:
                    version = (conn.execute(latest).scalar_one_or_none() or 0) + 1
                    conn.execute(baselines.insert(), {**row, "version": version})
                return version
            except StoreError as exc:  # concurrent writer took the version (PostgreSQL)
                if not isinstance(exc.__cause__, sa.exc.IntegrityError) or attempt == 19:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get_baseline(
        self,
        model: str,
        *,
        segment: str | None = None,
        model_version: str | None = None,
    ) -> BaselineRecord | None:
        """Return the latest baseline of ``(model, segment)``, or None.

        When ``segment`` has no baseline of its own, the whole-population
        (unsegmented) baseline of the model is returned. With ``model_version`` only
        baselines of that model version are considered (for the fallback too).
        """
        candidates = [_seg(segment)] + ([""] if segment is not None else [])
        with self._errors("get_baseline"), self._read() as conn:
            for seg in candidates:
                query = (
                    sa.select(baselines)
                    .where(baselines.c.model == model, baselines.c.segment == seg)
                    .order_by(baselines.c.version.desc())
                    .limit(1)
                )
                if model_version is not None:
                    query = query.where(baselines.c.model_version == model_version)
                row = conn.execute(query).one_or_none()
                if row is not None:
                    return BaselineRecord(
                        model=row.model,
                        segment=_unseg(row.segment),
                        version=row.version,
                        state=row.state,
                        metrics=row.metrics,
                        source=row.source,
                        sample_count=row.sample_count,
                        model_version=row.model_version,
                        created_at=row.created_at,
                        id=row.id,
                    )
        return None

    def baselines(self, model: str | None = None) -> pd.DataFrame:
        """Return every baseline version (columns :data:`BASELINE_COLUMNS`), oldest first."""
        import pandas as pd

        query = sa.select(*(baselines.c[name] for name in BASELINE_COLUMNS)).order_by(
            baselines.c.model, baselines.c.segment, baselines.c.version
        )
        if model is not None:
            query = query.where(baselines.c.model == model)
        with self._errors("baselines"), self._read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["segment"] = _unseg(row["segment"])
        frame = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
        _keep_none(frame, ("segment", "model_version"),
                   {k: [r[k] for r in rows] for k in ("segment", "model_version")})
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    # ------------------------------------------------------------------ alerts
    def add_alert(
        self,
        alert: dict,
        *,
        status: str,
        suppressed_by: str | None = None,
        channels: Sequence[str] = (),
    ) -> None:
        """Store an alert and one pending delivery per channel, in one transaction.

        Parameters
        ----------
        alert : dict
            The full alert; must hold ``alert_id``, ``model``, ``alert_type``,
            ``severity`` and ``timestamp`` (aware datetime or ISO 8601 string), and may
            hold ``segment``, ``metric`` and ``batch_id``. Stored whole as the JSON
            payload (datetimes and non-finite floats round-trip, see
            :mod:`perfkit.store.records`).
        status : {"delivered", "pending", "failed", "suppressed", "recorded"}
        suppressed_by : str, optional
            ``alert_id`` of the stored alert that suppresses this one.
        channels : sequence of str
            Channels that must deliver the alert.

        Raises
        ------
        StoreError
            On a duplicate ``alert_id`` or an unknown ``suppressed_by``.

        Examples
        --------
        >>> from datetime import datetime, timezone
        >>> store = Store("sqlite://")
        >>> store.add_alert({"alert_id": "a1", "model": "m", "metric": "recall",
        ...                  "alert_type": "threshold", "severity": "critical",
        ...                  "timestamp": datetime(2024, 1, 1, tzinfo=timezone.utc)},
        ...                 status="pending", channels=["email"])
        >>> [(p["alert_id"], ch) for p, ch in store.pending_deliveries()]
        [('a1', 'email')]
        >>> store.record_delivery("a1", "email", status="delivered")
        >>> store.alerts()[["alert_id", "status", "deliveries"]].to_dict("records")
        [{'alert_id': 'a1', 'status': 'delivered', 'deliveries': {'email': 'delivered'}}]
        """
        if not isinstance(alert, dict):
            raise InputTypeError(f"alert must be a dict, got {type(alert).__name__}",
                                 parameter="alert")
        missing = [k for k in ("alert_id", "model", "alert_type", "severity", "timestamp")
                   if alert.get(k) in (None, "")]
        if missing:
            raise ValidationError(f"alert lacks the keys {missing}", parameter="alert")
        if status not in ALERT_STATUSES:
            raise ValidationError(
                f"status must be one of {ALERT_STATUSES}, got {status!r}", parameter="status"
            )
        if isinstance(channels, str):
            raise InputTypeError("channels must be a list of str, got a str",
                                 parameter="channels")
        channels = list(channels)
        if any(not isinstance(c, str) or not c for c in channels) or len(set(channels)) < len(
            channels
        ):
            raise ValidationError(
                f"channels must be distinct non-empty str, got {channels!r}",
                parameter="channels",
            )
        _check_name(suppressed_by, "suppressed_by", optional=True)
        timestamp = alert["timestamp"]
        if isinstance(timestamp, str):
            try:
                timestamp = datetime.fromisoformat(timestamp)
            except ValueError as exc:
                raise ValidationError(
                    f"alert['timestamp'] is not ISO 8601: {timestamp!r}", parameter="alert"
                ) from exc
        timestamp = to_utc(timestamp, "alert['timestamp']")
        for key in ("segment", "metric", "batch_id"):
            _check_name(alert.get(key), f"alert[{key!r}]", optional=True)
        now = _now()
        row = {
            "alert_id": str(alert["alert_id"]),
            "model": str(alert["model"]),
            "segment": _seg(alert.get("segment")),
            "metric": alert.get("metric"),
            "alert_type": str(alert["alert_type"]),
            "severity": str(alert["severity"]),
            "timestamp": timestamp,
            "batch_id": alert.get("batch_id"),
            "status": status,
            "suppressed_by": suppressed_by,
            "payload": encode_json(alert, "alert"),
            "created_at": now,
        }
        deliveries = [
            {"alert_id": row["alert_id"], "channel": channel, "status": "pending",
             "attempts": 0, "last_error": None, "last_attempt_at": None, "delivered_at": None}
            for channel in channels
        ]
        try:
            with self._write() as conn:
                conn.execute(alerts.insert(), row)
                if deliveries:
                    conn.execute(alert_deliveries.insert(), deliveries)
        except sa.exc.IntegrityError as exc:
            raise StoreError(
                f"alert {row['alert_id']!r} could not be stored: duplicate alert_id or unknown "
                f"suppressed_by {suppressed_by!r} ({exc.orig})"
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"add_alert failed on store {self.url}: {mask_urls(str(exc))}") from exc

    def record_delivery(
        self,
        alert_id: str,
        channel: str,
        *,
        status: str,
        error: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record a delivery attempt of ``alert_id`` on ``channel``.

        ``delivered`` and ``failed`` increment ``attempts``; ``delivered`` sets
        ``delivered_at``. The alert's ``status`` is refreshed from its deliveries
        (``failed`` if any failed, else ``pending`` if any pending, else ``delivered``;
        suppressed alerts stay suppressed). A channel without a delivery row gets one.

        Raises
        ------
        StoreError
            If that channel already delivered the alert (so nothing is sent twice).
        RecordNotFoundError
            If the alert does not exist.
        """
        if status not in DELIVERY_STATUSES:
            raise ValidationError(
                f"status must be one of {DELIVERY_STATUSES}, got {status!r}", parameter="status"
            )
        _check_name(alert_id, "alert_id")
        _check_name(channel, "channel")
        at = _now() if at is None else to_utc(at, "at")
        increment = 0 if status == "pending" else 1
        values = {
            "status": status,
            "attempts": alert_deliveries.c.attempts + increment,
            "last_error": error,
            "last_attempt_at": at if increment else alert_deliveries.c.last_attempt_at,
            "delivered_at": at if status == "delivered" else None,
        }
        key = sa.and_(alert_deliveries.c.alert_id == alert_id,
                      alert_deliveries.c.channel == channel)
        with self._errors("record_delivery"), self._write() as conn:
            updated = conn.execute(
                alert_deliveries.update()
                .where(key, alert_deliveries.c.status != "delivered")
                .values(values)
            ).rowcount
            if updated == 0:
                if conn.execute(sa.select(alert_deliveries.c.status).where(key)).first():
                    raise StoreError(
                        f"alert {alert_id!r} was already delivered on channel {channel!r}; "
                        "refusing to record it again"
                    )
                if not conn.execute(
                    sa.select(alerts.c.alert_id).where(alerts.c.alert_id == alert_id)
                ).first():
                    raise RecordNotFoundError(f"no alert {alert_id!r} in {self.url}")
                conn.execute(
                    alert_deliveries.insert(),
                    {"alert_id": alert_id, "channel": channel, "status": status,
                     "attempts": increment, "last_error": error,
                     "last_attempt_at": at if increment else None,
                     "delivered_at": at if status == "delivered" else None},
                )
            statuses = set(
                conn.execute(
                    sa.select(alert_deliveries.c.status).where(
                        alert_deliveries.c.alert_id == alert_id
                    )
                ).scalars()
            )
            overall = (
                "failed" if "failed" in statuses
                else "pending" if "pending" in statuses
                else "delivered"
            )
            conn.execute(
                alerts.update()
                .where(alerts.c.alert_id == alert_id, alerts.c.status != "suppressed")
                .values(status=overall)
            )

    def pending_deliveries(self) -> list[tuple[dict, str]]:
        """Return ``(alert payload, channel)`` for every pending or failed delivery.

        Suppressed alerts are left out; ordered by alert timestamp, alert id, channel.
        """
        query = (
            sa.select(alerts.c.payload, alert_deliveries.c.channel)
            .join(alert_deliveries, alert_deliveries.c.alert_id == alerts.c.alert_id)
            .where(
                alert_deliveries.c.status.in_(("pending", "failed")),
                alerts.c.status != "suppressed",
            )
            .order_by(alerts.c.timestamp, alerts.c.alert_id, alert_deliveries.c.channel)
        )
        with self._errors("pending_deliveries"), self._read() as conn:
            return [(row.payload, row.channel) for row in conn.execute(query)]

    # ------------------------------------------------------------------ tracking / outbox
    def write_tracked(self, record: BatchRecord, **kwargs: Any) -> _tracking.TrackedWrite:
        """Write a batch with its identity check, bootstrap baseline and alerts in ONE transaction.

        See :func:`perfkit.store._tracking.write_tracked`; any error writes nothing.
        """
        if not isinstance(record, BatchRecord):
            raise InputTypeError(f"record must be a BatchRecord, got {type(record).__name__}", parameter="record")
        return _tracking.write_tracked(self, record, **kwargs)

    def model_identity(self, model: str) -> dict | None:
        """The stored identity of ``model`` (``task``, ``classes``, ``positive_label``,
        ``has_scores``), or None before its first labelled batch or baseline."""
        _check_name(model, "model")
        with self._errors("model_identity"), self._read() as conn:
            return _tracking.read_identity(conn, model)

    def set_model_identity(self, model: str, identity: Callable[[dict | None], dict | None]) -> dict | None:
        """Update the identity of ``model`` in one transaction: ``identity(current)`` returns the new
        one (None: unchanged) or raises to refuse."""
        _check_name(model, "model")
        with self._errors("set_model_identity"), self._write() as conn:
            current = _tracking.read_identity(conn, model)
            new = identity(current)
            if new is not None:
                _tracking.write_identity(conn, self.dialect, model, current, new)
            return new if new is not None else current

    def claim_deliveries(
        self,
        channels: Sequence[str],
        *,
        owner: str,
        lease_seconds: float,
        alert_ids: Sequence[str] | None = None,
        limit: int | None = None,
        exclude: Sequence[str] = (),
    ) -> list[_outbox.Claim]:
        """Claim open deliveries with a lease (see :mod:`perfkit.store._outbox`)."""
        return _outbox.claim_deliveries(self, channels=channels, owner=owner, lease_seconds=lease_seconds,
                                        alert_ids=alert_ids, limit=limit, exclude=exclude)

    def record_claimed(self, claim: _outbox.Claim, *, status: str, error: str | None = None) -> bool:
        """Record the outcome of a claimed delivery and release its lease."""
        if status not in ("delivered", "failed"):
            raise ValidationError(f"status must be 'delivered' or 'failed', got {status!r}", parameter="status")
        return _outbox.record_claimed(self, claim, status=status, error=error)

    def alerts(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
        include_suppressed: bool = True,
    ) -> pd.DataFrame:
        """Return one row per alert (columns :data:`ALERT_COLUMNS`), by timestamp.

        ``deliveries`` is a dict channel -> delivery status; ``payload`` the stored alert.
        """
        import pandas as pd

        clauses = _filters(alerts, model, segment, start, end)
        if not include_suppressed:
            clauses.append(alerts.c.status != "suppressed")
        query = (
            sa.select(alerts, alert_deliveries.c.channel,
                      alert_deliveries.c.status.label("delivery_status"))
            .outerjoin(alert_deliveries, alert_deliveries.c.alert_id == alerts.c.alert_id)
            .where(*clauses)
            .order_by(alerts.c.timestamp, alerts.c.created_at, alerts.c.alert_id,
                      alert_deliveries.c.channel)
        )
        with self._errors("alerts"), self._read() as conn:
            rows = conn.execute(query).all()
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = out.get(row.alert_id)
            if entry is None:
                entry = out[row.alert_id] = {
                    name: getattr(row, name) for name in ALERT_COLUMNS if name != "deliveries"
                }
                entry["segment"] = _unseg(entry["segment"])
                entry["deliveries"] = {}
            if row.channel is not None:
                entry["deliveries"][row.channel] = row.delivery_status
        items = list(out.values())
        frame = pd.DataFrame(items, columns=list(ALERT_COLUMNS))
        nullable = ("segment", "metric", "batch_id", "suppressed_by")
        _keep_none(frame, nullable, {k: [r[k] for r in items] for k in nullable})
        for column in ("timestamp", "created_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def last_alert(
        self,
        model: str,
        segment: str | None,
        metric: str | None,
        alert_type: str,
        *,
        since: datetime,
    ) -> dict | None:
        """Return the payload of the latest non-suppressed alert of that key at/after ``since``.

        Used for cooldowns. ``segment`` / ``metric`` None match alerts without one.
        """
        since = to_utc(since, "since")
        metric_clause = alerts.c.metric.is_(None) if metric is None else alerts.c.metric == metric
        query = (
            sa.select(alerts.c.payload)
            .where(
                alerts.c.model == model,
                alerts.c.segment == _seg(segment),
                metric_clause,
                alerts.c.alert_type == alert_type,
                alerts.c.timestamp >= since,
                alerts.c.status != "suppressed",
            )
            .order_by(alerts.c.timestamp.desc(), alerts.c.created_at.desc())
            .limit(1)
        )
        with self._errors("last_alert"), self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    # ------------------------------------------------------------------ maintenance
    def export_json(self, path: str | pathlib.Path, *, lines: bool = True) -> int:
        """Write the whole store to ``path``; see :func:`perfkit.store.backup.export_json`."""
        from perfkit.store.backup import export_json

        return export_json(self, path, lines=lines)

    def import_json(self, path: str | pathlib.Path) -> int:
        """Load an export into this empty store; see :func:`perfkit.store.backup.import_json`."""
        from perfkit.store.backup import import_json

        return import_json(self, path)

    def integrity_check(self) -> list[str]:
        """Return a list of problems found in the store (empty when healthy).

        SQLite: ``PRAGMA integrity_check``, ``PRAGMA foreign_key_check`` and JSON
        validity of every JSON cell. Both databases: orphan deliveries, dangling
        ``suppressed_by``, unknown statuses, delivered rows without ``delivered_at``.
        """
        problems: list[str] = []
        with self._errors("integrity_check"), self._read() as conn:
            if self.dialect == "sqlite":
                result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if result != ["ok"]:
                    problems.extend(f"integrity_check: {r}" for r in result)
                problems.extend(
                    f"foreign_key_check: {tuple(r)}"
                    for r in conn.exec_driver_sql("PRAGMA foreign_key_check")
                )
                for table, columns in ((batches, ("state", "metrics", "metadata")),
                                       (baselines, ("state", "metrics")),
                                       (alerts, ("payload",))):
                    for column in columns:
                        n = conn.exec_driver_sql(
                            f"SELECT count(*) FROM {table.name} WHERE json_valid({column}) = 0"
                        ).scalar_one()
                        if n:
                            problems.append(f"{table.name}.{column}: {n} rows with invalid JSON")
            checks = {
                "alert deliveries without an alert": sa.select(sa.func.count())
                .select_from(alert_deliveries)
                .where(~alert_deliveries.c.alert_id.in_(sa.select(alerts.c.alert_id))),
                "alerts suppressed by a missing alert": sa.select(sa.func.count())
                .select_from(alerts)
                .where(
                    alerts.c.suppressed_by.is_not(None),
                    ~alerts.c.suppressed_by.in_(sa.select(alerts.c.alert_id)),
                ),
                "alerts with an unknown status": sa.select(sa.func.count())
                .select_from(alerts)
                .where(alerts.c.status.not_in(ALERT_STATUSES)),
                "deliveries with an unknown status": sa.select(sa.func.count())
                .select_from(alert_deliveries)
                .where(alert_deliveries.c.status.not_in(DELIVERY_STATUSES)),
                "delivered deliveries without delivered_at": sa.select(sa.func.count())
                .select_from(alert_deliveries)
                .where(alert_deliveries.c.status == "delivered",
                       alert_deliveries.c.delivered_at.is_(None)),
                "batches with a negative sample_count": sa.select(sa.func.count())
                .select_from(batches)
                .where(batches.c.sample_count < 0),
            }
            for label, query in checks.items():
                n = conn.execute(query).scalar_one()
                if n:
                    problems.append(f"{label}: {n}")
        for problem in problems:
            logger.warning("store %s: %s", self.url, problem)
        return problems


def open_store(url_or_store: Store | str | pathlib.Path | None = None, **kwargs: Any) -> Store:
    """Return ``url_or_store`` if it is a :class:`Store`, else open ``Store(url, **kwargs)``.

    Examples
    --------
    >>> store = open_store("sqlite://")
    >>> open_store(store) is store
    True
    """
    if isinstance(url_or_store, Store):
        return url_or_store
    return Store(url_or_store, **kwargs)


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
        obj.__dict__.update(base.__dict__)
    obj.__dict__.update(values)
    return obj


def _record_from_row(row: Any) -> BatchRecord:
    return _trusted(
        BatchRecord,
        model=row.model,
        timestamp=row.timestamp,
        task=row.task,
        state=row.state,
        metrics=row.metrics,
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


def _keep_none(frame: pd.DataFrame, columns: Iterable[str], data: dict[str, list]) -> None:
    """Give nullable text columns object dtype so missing values stay ``None``.

    (pandas 3 infers its ``str`` dtype, which turns ``None`` into NaN.)
    """
    import pandas as pd

    for column in columns:
        frame[column] = pd.Series(data[column], index=frame.index, dtype=object)

