"""The tracking transaction: a batch, its model identity, baseline and alerts in one write.

:func:`write_tracked` is what :meth:`perfkit.store.Store.write_tracked` runs: inside one
write transaction it (1) checks and updates the model identity, (2) inserts the batch, or
completes its pending prediction-only row (same row count only), (3) stores the bootstrap
baseline when none exists yet, and (4) applies the cooldown and stores every alert with one
pending delivery row per channel. Any error rolls everything back: nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from perfkit.exceptions import StoreError, ValidationError
from perfkit.store._common import _batch_row, _now, _seg, _trusted
from perfkit.store.records import BatchRecord, encode_json, normalize_metrics, to_utc
from perfkit.store.schema import alert_deliveries, alerts, baselines, batches, models

__all__ = ["AlertPlan", "CooldownPolicy", "TrackedWrite", "read_identity", "write_identity", "write_tracked"]


class CooldownPolicy(Protocol):
    """What the transaction asks the alert policy (see :class:`perfkit.alerts.policy.AlertManager`)."""

    def window_start(self, alert: dict) -> datetime: ...

    def suppressed_by(self, alert: dict, last: dict | None) -> str | None: ...


@dataclass(frozen=True)
class AlertPlan:
    """How one alert was stored: ``pending`` (deliveries queued), ``recorded`` or ``suppressed``."""

    alert_id: str
    status: str
    suppressed_by: str | None = None


@dataclass(frozen=True)
class TrackedWrite:
    """Result of :func:`write_tracked`."""

    record: BatchRecord
    alerts: tuple[AlertPlan, ...]
    baseline_version: int | None
    completed: bool
    segment_records: tuple[BatchRecord, ...] = ()


def _insert(dialect: str, table: sa.Table) -> Any:
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


def read_identity(conn: sa.Connection, model: str) -> dict | None:
    row = conn.execute(sa.select(models).where(models.c.model == model)).one_or_none()
    if row is None:
        return None
    return {"task": row.task, "classes": None if row.classes is None else list(row.classes),
            "positive_label": row.positive_label, "has_scores": row.has_scores}


def write_identity(conn: sa.Connection, dialect: str, model: str, current: dict | None, new: dict) -> None:
    now = _now()
    values = {"task": new["task"], "classes": new.get("classes"), "positive_label": new.get("positive_label"),
              "has_scores": new.get("has_scores")}
    if current is None:
        conn.execute(_insert(dialect, models).on_conflict_do_nothing(index_elements=["model"]),
                     {"model": model, **values, "created_at": now, "updated_at": now})
    elif {k: current.get(k) for k in values} != values:
        conn.execute(models.update().where(models.c.model == model).values(**values, updated_at=now))


def _key(record: BatchRecord) -> sa.ColumnElement[bool]:
    return sa.and_(batches.c.model == record.model, batches.c.segment == _seg(record.segment),
                   batches.c.batch_id == record.batch_id)


def _put_batch(conn: sa.Connection, dialect: str, record: BatchRecord, now: datetime) -> tuple[BatchRecord, bool]:
    row = _batch_row(record, now)
    stmt = (_insert(dialect, batches)
            .on_conflict_do_nothing(index_elements=["model", "segment", "batch_id"])
            .returning(batches.c.id))
    new_id = conn.execute(stmt, row).scalar_one_or_none()
    if new_id is not None:
        return _trusted(BatchRecord, record, id=new_id, created_at=now, updated_at=now), False
    existing = conn.execute(
        sa.select(batches.c.id, batches.c.created_at, batches.c.labels_pending, batches.c.sample_count)
        .where(_key(record))
    ).one()
    where = f"batch {record.batch_id!r} of model {record.model!r} (segment {record.segment!r})"
    if record.labels_pending or not existing.labels_pending:
        raise StoreError(f"{where} is already in the store; batch ids must be unique per model and segment")
    if existing.sample_count != record.sample_count:
        raise ValidationError(
            f"{where} is pending with {existing.sample_count} rows; its labels must complete the same "
            f"{existing.sample_count} rows, got {record.sample_count}",
            parameter="y_true",
        )
    del row["created_at"]
    conn.execute(batches.update().where(_key(record), batches.c.labels_pending.is_(sa.true())).values(row))
    return _trusted(BatchRecord, record, id=existing.id, created_at=existing.created_at, updated_at=now), True


def _put_baseline(conn: sa.Connection, dialect: str, model: str, segment: str | None, baseline: dict,
                  now: datetime) -> int | None:
    exists = conn.execute(sa.select(baselines.c.version).where(
        baselines.c.model == model, baselines.c.segment == _seg(segment)).limit(1)).first()
    if exists is not None:  # written meanwhile by another process: keep that one
        return None
    stmt = _insert(dialect, baselines).on_conflict_do_nothing(index_elements=["model", "segment", "version"])
    done = conn.execute(stmt, {
        "model": model, "segment": _seg(segment), "model_version": baseline.get("model_version"),
        "version": 1, "source": baseline["source"], "sample_count": int(baseline["sample_count"]),
        "state": encode_json(baseline["state"], "state"), "metrics": normalize_metrics(baseline["metrics"]),
        "created_at": now,
    }).rowcount
    return 1 if done else None


def _last_alert(conn: sa.Connection, alert: dict, since: datetime) -> dict | None:
    metric = alert.get("metric")
    metric_clause = alerts.c.metric.is_(None) if metric is None else alerts.c.metric == metric
    return conn.execute(
        sa.select(alerts.c.payload).where(
            alerts.c.model == alert["model"], alerts.c.segment == _seg(alert.get("segment")), metric_clause,
            alerts.c.alert_type == alert["alert_type"], alerts.c.timestamp >= to_utc(since, "since"),
            alerts.c.status != "suppressed",
        ).order_by(alerts.c.timestamp.desc(), alerts.c.created_at.desc()).limit(1)
    ).scalar_one_or_none()


def _alert_time(alert: dict) -> datetime:
    ts = alert["timestamp"]
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError as exc:
            raise ValidationError(f"alert['timestamp'] is not ISO 8601: {ts!r}", parameter="alert") from exc
    return to_utc(ts, "alert['timestamp']")


def _put_alerts(conn: sa.Connection, items: Sequence[tuple[dict, Sequence[str]]],
                policy: CooldownPolicy | None, now: datetime) -> tuple[AlertPlan, ...]:
    plans = []
    for alert, channels in items:
        suppressor = None
        if policy is not None:
            suppressor = policy.suppressed_by(alert, _last_alert(conn, alert, policy.window_start(alert)))
        status = "suppressed" if suppressor else ("pending" if channels else "recorded")
        conn.execute(alerts.insert(), {
            "alert_id": str(alert["alert_id"]), "model": str(alert["model"]), "segment": _seg(alert.get("segment")),
            "metric": alert.get("metric"), "alert_type": str(alert["alert_type"]),
            "severity": str(alert["severity"]), "timestamp": _alert_time(alert),
            "batch_id": alert.get("batch_id"), "status": status, "suppressed_by": suppressor,
            "payload": encode_json(alert, "alert"), "created_at": now,
        })
        if status == "pending":
            conn.execute(alert_deliveries.insert(), [
                {"alert_id": str(alert["alert_id"]), "channel": ch, "status": "pending", "attempts": 0}
                for ch in channels
            ])
        plans.append(AlertPlan(str(alert["alert_id"]), status, suppressor))
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
    """Write one tracked batch and everything it implies in ONE transaction.

    ``identity(current)`` gets the model's stored identity (or None) and returns the new one
    (or None to keep it); it raises to refuse the batch. ``baseline`` (keys ``state``,
    ``metrics``, ``source``, ``sample_count``, ``model_version``) is stored as version 1 only if
    the model / segment still has no baseline. ``alerts_`` holds ``(alert dict, channels)``
    pairs; ``policy`` decides the cooldown. ``segment_records``: the per-segment records of
    the same tracking call (``track_performance(segments=...)``), inserted after ``record``.
    Any exception rolls everything back.
    """
    now = _now()
    with store._errors("tracking a batch"), store._write() as conn:
        if identity is not None:
            current = read_identity(conn, record.model)
            new = identity(current)
            if new is not None:
                write_identity(conn, store.dialect, record.model, current, new)
        stored, completed = _put_batch(conn, store.dialect, record, now)
        parts = tuple(_put_batch(conn, store.dialect, r, now)[0] for r in segment_records)
        version = None
        if baseline is not None:
            version = _put_baseline(conn, store.dialect, record.model, record.segment, baseline, now)
        plans = _put_alerts(conn, alerts_, policy, now)
    return TrackedWrite(stored, plans, version, completed, parts)
