"""The tracking call's statements on SQLite through the driver's own connection.

A tracking call reads the model identity, the previous batches' metrics and whether a
delivery waits, then writes one transaction (:func:`perfkit.store._tracking.write_tracked`).
Through SQLAlchemy Core each statement costs a compile-cache lookup, parameter processing
and result wrapping (about 0.1-0.3 ms each, several times the statement itself); a
``track_performance`` call of a large regression batch spends more there than in its
metrics. Here the same statements run on the pooled connection's ``sqlite3`` object,
with the values converted exactly as the SQLAlchemy column types convert them (times as
naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``, booleans as 0 / 1, JSON cells through the
store's serializer), so the rows are byte-identical (``tests/test_store_lean.py`` compares
them with the SQLAlchemy path). The transaction is the same one (``BEGIN IMMEDIATE`` ...
``COMMIT``; any error rolls everything back and nothing is written).

PostgreSQL (and any other driver) keeps the SQLAlchemy path.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from perfkit.exceptions import StoreError, ValidationError
from perfkit.store._common import _dumps, _loads, _now, _seg, _trusted, _unseg, mask_urls
from perfkit.store._tracking import AlertPlan, CooldownPolicy, TrackedWrite, _alert_time
from perfkit.store.records import BatchRecord, encode_json, normalize_metrics, to_utc

__all__ = ["baseline_key", "enabled", "has_open_deliveries", "previous_metrics", "read_identity", "write_tracked"]


def enabled(store: Any) -> bool:
    """Whether ``store`` runs on the standard library's ``sqlite3`` driver."""
    return store.dialect == "sqlite" and store._engine.dialect.driver == "pysqlite"


def _time(value: datetime) -> str:
    """A time as SQLAlchemy's SQLite ``DateTime`` stores it (naive UTC, microseconds)."""
    if value.tzinfo is None:  # what UTCDateTime refuses too
        raise ValueError(f"naive datetime {value!r} reached the store")
    v = value.astimezone(UTC)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            f".{v.microsecond:06d}")


def _json(value: Any) -> str:
    """A JSON cell as the column type binds it (``None`` is JSON ``null``, as ``sa.JSON``)."""
    return _dumps(value)


@contextlib.contextmanager
def _connection(store: Any, action: str) -> Iterator[sqlite3.Connection]:
    """The pooled connection's driver object (autocommit: the store emits BEGIN itself);
    driver errors become :class:`StoreError` naming the action and store."""
    try:
        fairy = store._engine.raw_connection()
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"{action} failed on store {store.url}: {mask_urls(str(exc))}") from exc
    try:
        yield fairy.driver_connection
    except sqlite3.Error as exc:
        raise StoreError(f"{action} failed on store {store.url}: {mask_urls(str(exc))}") from exc
    finally:
        fairy.close()


# ---------------------------------------------------------------------- reads
def _cell(value: Any) -> Any:
    """A JSON cell as the column type reads it: the column's NUMERIC affinity stores JSON
    numbers such as ``1`` as SQLite numbers, which are taken as they are."""
    return _loads(value) if isinstance(value, (str, bytes)) else value


def _identity_row(conn: sqlite3.Connection, model: str) -> dict | None:
    row = conn.execute("SELECT task, classes, positive_label, has_scores FROM perfkit_models WHERE model = ?",
                       (model,)).fetchone()
    if row is None:
        return None
    task, classes, positive, scores = row
    classes = None if classes is None else _cell(classes)
    return {"task": task, "classes": None if classes is None else list(classes),
            "positive_label": None if positive is None else _cell(positive),
            "has_scores": None if scores is None else bool(scores)}


def read_identity(store: Any, model: str) -> dict | None:
    """:meth:`Store.model_identity` (one statement, its own snapshot)."""
    with _connection(store, "model_identity") as conn:
        return _identity_row(conn, model)


def previous_metrics(store: Any, model: str, segment: str | None, before: datetime, before_id: int | None,
                     limit: int) -> list[dict]:
    """:meth:`Store.previous_metrics`: metric dicts of the ``limit`` labelled records just
    before (``before``, ``before_id``), oldest first."""
    ts = _time(to_utc(before, "before"))
    with _connection(store, "previous_metrics") as conn:
        rows = conn.execute(
            "SELECT metrics FROM perfkit_batches WHERE model = ? AND segment = ? AND labels_pending = 0 "
            "AND (timestamp < ? OR (timestamp = ? AND id < ?)) ORDER BY timestamp DESC, id DESC LIMIT ?",
            (model, _seg(segment), ts, ts, before_id or 0, limit)).fetchall()
    return [dict(_loads(text)) for (text,) in reversed(rows)]


def baseline_key(store: Any, model: str, segments: Sequence[str]) -> tuple[int, int, str | None] | None:
    """:meth:`Store.baseline_key`: the first of ``segments`` (stored form) with a baseline."""
    with _connection(store, "get_baseline") as conn:
        for seg in segments:
            row = conn.execute("SELECT id, version, segment FROM perfkit_baselines WHERE model = ? AND segment = ? "
                               "ORDER BY version DESC LIMIT 1", (model, seg)).fetchone()
            if row is not None:
                return int(row[0]), int(row[1]), _unseg(row[2])
    return None


def has_open_deliveries(store: Any, channels: Sequence[str]) -> bool:
    """Whether a pending / failed delivery on ``channels`` is free to claim."""
    if not channels:
        return False
    marks = ", ".join("?" * len(channels))
    with _connection(store, "checking deliveries") as conn:
        row = conn.execute(
            "SELECT alert_id FROM perfkit_alert_deliveries WHERE status IN ('pending', 'failed') "
            f"AND channel IN ({marks}) AND (lease_until IS NULL OR lease_until < ?) LIMIT 1",
            (*channels, _time(_now()))).fetchone()
    return row is not None


# ---------------------------------------------------------------------- the transaction
_BATCH_COLUMNS = ("model", "segment", "batch_id", "model_version", "timestamp", "task", "sample_count",
                  "performance_score", "labels_pending", "state", "metrics", "metadata", "created_at",
                  "updated_at")
_INSERT_BATCH = (f"INSERT INTO perfkit_batches ({', '.join(_BATCH_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(_BATCH_COLUMNS))}) "
                 "ON CONFLICT (model, segment, batch_id) DO NOTHING RETURNING id")
_UPDATE_BATCH = ("UPDATE perfkit_batches SET "
                 + ", ".join(f"{c} = ?" for c in _BATCH_COLUMNS if c != "created_at")
                 + " WHERE model = ? AND segment = ? AND batch_id = ? AND labels_pending IS 1")


def _batch_values(record: BatchRecord, now: str) -> list[Any]:
    return [record.model, _seg(record.segment), record.batch_id, record.model_version, _time(record.timestamp),
            record.task, record.sample_count, record.performance_score, 1 if record.labels_pending else 0,
            _json(encode_json(record.state, "state")), _json(record.metrics),
            _json(encode_json(record.metadata, "metadata")), now, now]


def _put_batch(conn: sqlite3.Connection, record: BatchRecord, now: datetime) -> tuple[BatchRecord, bool]:
    values = _batch_values(record, _time(now))
    row = conn.execute(_INSERT_BATCH, values).fetchone()
    if row is not None:
        return _trusted(BatchRecord, record, id=row[0], created_at=now, updated_at=now), False
    key = (record.model, _seg(record.segment), record.batch_id)
    existing = conn.execute(
        "SELECT id, created_at, labels_pending, sample_count FROM perfkit_batches "
        "WHERE model = ? AND segment = ? AND batch_id = ?", key).fetchone()
    id_, created, pending, count = existing
    where = f"batch {record.batch_id!r} of model {record.model!r} (segment {record.segment!r})"
    if record.labels_pending or not pending:
        raise StoreError(f"{where} is already in the store; batch ids must be unique per model and segment")
    if count != record.sample_count:
        raise ValidationError(
            f"{where} is pending with {count} rows; its labels must complete the same "
            f"{count} rows, got {record.sample_count}",
            parameter="y_true",
        )
    del values[12]  # created_at stays
    conn.execute(_UPDATE_BATCH, (*values, *key))
    created_at = datetime.fromisoformat(created).replace(tzinfo=UTC)
    return _trusted(BatchRecord, record, id=id_, created_at=created_at, updated_at=now), True


def _write_identity(conn: sqlite3.Connection, model: str, current: dict | None, new: dict) -> None:
    now = _time(_now())
    values = {"task": new["task"], "classes": new.get("classes"), "positive_label": new.get("positive_label"),
              "has_scores": new.get("has_scores")}
    bound = (values["task"], _json(values["classes"]), _json(values["positive_label"]),
             None if values["has_scores"] is None else int(bool(values["has_scores"])))
    if current is None:
        conn.execute("INSERT INTO perfkit_models (model, task, classes, positive_label, has_scores, created_at, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model) DO NOTHING",
                     (model, *bound, now, now))
    elif {k: current.get(k) for k in values} != values:
        conn.execute("UPDATE perfkit_models SET task = ?, classes = ?, positive_label = ?, has_scores = ?, "
                     "updated_at = ? WHERE model = ?", (*bound, now, model))


def _put_baseline(conn: sqlite3.Connection, model: str, segment: str | None, baseline: dict,
                  now: datetime) -> int | None:
    seg = _seg(segment)
    if conn.execute("SELECT version FROM perfkit_baselines WHERE model = ? AND segment = ? LIMIT 1",
                    (model, seg)).fetchone() is not None:
        return None  # written meanwhile by another process: keep that one
    done = conn.execute(
        "INSERT INTO perfkit_baselines (model, segment, model_version, version, source, sample_count, state, "
        "metrics, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (model, segment, version) DO NOTHING",
        (model, seg, baseline.get("model_version"), 1, baseline["source"], int(baseline["sample_count"]),
         _json(encode_json(baseline["state"], "state")), _json(normalize_metrics(baseline["metrics"])),
         _time(now))).rowcount
    return 1 if done else None


def _last_alert(conn: sqlite3.Connection, alert: dict, since: datetime) -> dict | None:
    metric = alert.get("metric")
    row = conn.execute(
        "SELECT payload FROM perfkit_alerts WHERE model = ? AND segment = ? AND "
        + ("metric IS NULL" if metric is None else "metric = ?")
        + " AND alert_type = ? AND timestamp >= ? AND status != 'suppressed' "
        "ORDER BY timestamp DESC, created_at DESC LIMIT 1",
        (alert["model"], _seg(alert.get("segment")), *(() if metric is None else (metric,)),
         alert["alert_type"], _time(to_utc(since, "since")))).fetchone()
    return None if row is None else _loads(row[0])


def _put_alerts(conn: sqlite3.Connection, items: Sequence[tuple[dict, Sequence[str]]],
                policy: CooldownPolicy | None, now: datetime) -> tuple[AlertPlan, ...]:
    plans = []
    created = _time(now)
    for alert, channels in items:
        suppressor = None
        if policy is not None:
            suppressor = policy.suppressed_by(alert, _last_alert(conn, alert, policy.window_start(alert)))
        status = "suppressed" if suppressor else ("pending" if channels else "recorded")
        alert_id = str(alert["alert_id"])
        conn.execute(
            "INSERT INTO perfkit_alerts (alert_id, model, segment, metric, alert_type, severity, timestamp, "
            "batch_id, status, suppressed_by, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert_id, str(alert["model"]), _seg(alert.get("segment")), alert.get("metric"),
             str(alert["alert_type"]), str(alert["severity"]), _time(_alert_time(alert)), alert.get("batch_id"),
             status, suppressor, _json(encode_json(alert, "alert")), created))
        if status == "pending":
            conn.executemany(
                "INSERT INTO perfkit_alert_deliveries (alert_id, channel, status, attempts) VALUES (?, ?, ?, ?)",
                [(alert_id, ch, "pending", 0) for ch in channels])
        plans.append(AlertPlan(alert_id, status, suppressor))
    return tuple(plans)


def write_tracked(
    store: Any,
    record: BatchRecord,
    *,
    identity: Callable[[dict | None], dict | None] | None = None,
    baseline: dict | None = None,
    alerts_: Sequence[tuple[dict, Sequence[str]]] = (),
    policy: CooldownPolicy | None = None,
    segment_records: Sequence[BatchRecord] = (),
) -> TrackedWrite:
    """:func:`perfkit.store._tracking.write_tracked` on the driver connection: the same
    statements and rows in ONE ``BEGIN IMMEDIATE`` transaction; any error rolls it back."""
    if store.read_only:
        raise StoreError(f"store {store.url} is read-only (the file is not writable): nothing was written")
    now = _now()
    with _connection(store, "tracking a batch") as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if identity is not None:
                current = _identity_row(conn, record.model)
                new = identity(current)
                if new is not None:
                    _write_identity(conn, record.model, current, new)
            stored, completed = _put_batch(conn, record, now)
            parts = tuple(_put_batch(conn, r, now)[0] for r in segment_records)
            version = None
            if baseline is not None:
                version = _put_baseline(conn, record.model, record.segment, baseline, now)
            plans = _put_alerts(conn, alerts_, policy, now)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return TrackedWrite(stored, plans, version, completed, parts)
