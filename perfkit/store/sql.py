"""The SQL history store: batches, baselines and alerts in SQLite or PostgreSQL.

One :class:`Store` class serves both databases through SQLAlchemy Core. Every write is
one transaction. On SQLite the store uses WAL, ``synchronous=NORMAL``, a 20 s busy
timeout, foreign keys, and takes the write lock at the start of a write transaction
(``BEGIN IMMEDIATE``) so several processes can append at once without
"database is locked" errors.

The class is assembled from private modules, one per concept: ``_base`` (URL, engine,
transactions, migrations), ``_batches``, ``_frames`` (DataFrames, states, windows),
``_baselines``, ``_alerts`` (alerts and the delivery outbox, with ``_outbox`` and the
tracking transaction in ``_tracking``); ``_common`` holds the shared helpers.

The schema is managed by Alembic (scripts in ``perfkit/store/migrations``):

* an empty database gets the schema when opened with ``create=True``;
* an older schema is upgraded when ``auto_upgrade`` is true (the default on SQLite,
  where the store is a local file owned by perfkit). On PostgreSQL the default is
  ``False``: a shared server is upgraded on purpose, with ``auto_upgrade=True``;
* a schema revision this perfkit does not know (written by a newer perfkit) raises
  :class:`~perfkit.exceptions.SchemaVersionError`.
"""

from __future__ import annotations

import pathlib
from typing import Any

import sqlalchemy as sa

from perfkit.store._alerts import _Alerts
from perfkit.store._base import _StoreBase
from perfkit.store._baselines import _Baselines
from perfkit.store._batches import _Batches
from perfkit.store._common import (
    ALERT_COLUMNS,
    BASELINE_COLUMNS,
    DEFAULT_URL,
    HISTORY_COLUMNS,
    METRICS_FRAME_COLUMNS,
    _batch_row,  # noqa: F401 - used by benchmarks/store.py
    logger,
)
from perfkit.store._frames import _Frames
from perfkit.store.backup import export_json as _export_json
from perfkit.store.backup import import_json as _import_json
from perfkit.store.schema import (
    ALERT_STATUSES,
    DELIVERY_STATUSES,
    alert_deliveries,
    alerts,
    baselines,
    batches,
)

__all__ = [
    "ALERT_COLUMNS",
    "BASELINE_COLUMNS",
    "DEFAULT_URL",
    "HISTORY_COLUMNS",
    "METRICS_FRAME_COLUMNS",
    "Store",
    "open_store",
]


class Store(_StoreBase, _Batches, _Frames, _Baselines, _Alerts):
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

    # ------------------------------------------------------------------ maintenance
    def export_json(self, path: str | pathlib.Path, *, lines: bool = True) -> int:
        """Write the whole store to ``path``; see :func:`perfkit.store.backup.export_json`."""
        return _export_json(self, path, lines=lines)

    def import_json(self, path: str | pathlib.Path) -> int:
        """Load an export into this empty store; see :func:`perfkit.store.backup.import_json`."""
        return _import_json(self, path)

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
