"""Store set-up: URL, engine, transactions, error mapping, schema migrations."""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator
from typing import Self

import sqlalchemy as sa

from perfkit._checks import mask_url
from perfkit.exceptions import (
    ConfigError,
    InputTypeError,
    SchemaVersionError,
    StoreError,
)
from perfkit.store import _lean
from perfkit.store._common import (
    _PERFKIT_TABLES,
    _SCHEMA_LOCK_KEY,
    DEFAULT_URL,
    _make_engine,
    _migration_scripts,
    _migrations_location,
    logger,
    mask_urls,
)
from perfkit.store.schema import (
    SCHEMA_REVISION,
    VERSION_TABLE,
)

#: The newest migration's revision (``perfkit/store/migrations/versions``); a store that
#: records it opens without Alembic. ``tests/test_cli.py`` checks it against Alembic's head.
SCHEMA_HEAD = SCHEMA_REVISION


class _StoreBase:
    """Methods of :class:`perfkit.store.Store` (see there)."""

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
            parsed.port  # noqa: B018 - a port that is not a number raises here, not later
        except (sa.exc.ArgumentError, ValueError):
            raise ConfigError(
                f"url {mask_url(url)!r} is not a valid SQLAlchemy URL"
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
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:  # a parent is a file, or not writable
                        raise StoreError(f"cannot create the directory of store {path}: {exc}") from exc
                elif not path.exists():
                    raise StoreError(f"no perfkit store at {path} (open it with create=True)")
        self.url = mask_url(url)
        self.read_only = read_only_path is not None
        self._engine = _make_engine(parsed, echo, read_only=read_only_path)
        self.dialect = self._engine.dialect.name
        # the tracking call's statements on the sqlite3 connection itself (see _lean); not
        # with echo, whose log would miss them
        self._lean = _lean.enabled(self) and not echo
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

    def __enter__(self) -> Self:
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

    def _schema_is_head(self) -> bool:
        """The store records this perfkit's schema head (:data:`SCHEMA_HEAD`): one query,
        without importing Alembic (which costs more than a read command's own work)."""
        try:
            with self._read() as conn:
                rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        except sa.exc.SQLAlchemyError:  # no version table (new store) or unreachable: Alembic's path says why
            return False
        return len(rows) == 1 and rows[0][0] == SCHEMA_HEAD

    def _check_schema_read_only(self) -> None:
        if self._schema_is_head():
            return
        from alembic.runtime.migration import MigrationContext

        head = _migration_scripts().get_current_head()
        with self._errors("opening the store"), self._read() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current != head:
            raise SchemaVersionError(
                f"read-only store {self.url} has schema revision {current!r} (expected {head!r}); "
                "it cannot be migrated without write access"
            )

    def _prepare_schema(self, *, create: bool) -> None:
        if self._schema_is_head():
            return
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.util.exc import CommandError

        location = _migrations_location()
        script = _migration_scripts()
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
