"""The alert outbox: pending deliveries claimed with a lease before sending.

A delivery row (alert, channel) is written ``pending`` in the same transaction as its batch.
A sender *claims* it before sending: an atomic conditional UPDATE that succeeds only when
the row is still pending/failed and nobody holds an unexpired lease (on PostgreSQL the
candidates are first locked with ``SELECT ... FOR UPDATE SKIP LOCKED``; on SQLite the
write transaction is ``BEGIN IMMEDIATE``). The claim sets ``lease_owner`` / ``lease_until``
and counts the attempt. After sending, the owner records the outcome, which clears the
lease. So two processes never send the same delivery; only a crash between sending and
recording leaves a lease that expires, and the next claim then counts the row as
``orphaned`` (and logs it): that delivery may have been sent twice, with the same
idempotency key (the alert id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from perfkit.store.schema import alert_deliveries, alerts

__all__ = ["Claim", "claim_deliveries", "has_open_deliveries", "record_claimed", "refresh_alert_status"]

logger = logging.getLogger("perfkit")

_OPEN = ("pending", "failed")


@dataclass(frozen=True)
class Claim:
    """One delivery claimed by ``owner`` until ``lease_until``."""

    alert_id: str
    channel: str
    payload: dict
    owner: str
    lease_until: datetime
    attempt: int
    orphaned: bool


def _now() -> datetime:
    return datetime.now(UTC)


def claim_deliveries(
    store: Any,
    *,
    channels: Sequence[str],
    owner: str,
    lease_seconds: float,
    alert_ids: Sequence[str] | None = None,
    limit: int | None = None,
    exclude: Sequence[str] = (),
) -> list[Claim]:
    """Claim open deliveries on ``channels`` (optionally of ``alert_ids`` only, never of
    ``exclude``), oldest first."""
    channels = list(channels)
    if not channels or (alert_ids is not None and not alert_ids):
        return []
    now = _now()
    until = now + timedelta(seconds=float(lease_seconds))
    d = alert_deliveries.c
    free = sa.or_(d.lease_until.is_(None), d.lease_until < now)
    query = (
        sa.select(d.alert_id, d.channel, d.lease_owner, d.attempts, alerts.c.payload)
        .join(alerts, alerts.c.alert_id == d.alert_id)
        .where(d.status.in_(_OPEN), d.channel.in_(channels), alerts.c.status != "suppressed", free)
        .order_by(alerts.c.timestamp, d.alert_id, d.channel)
    )
    if alert_ids is not None:
        query = query.where(d.alert_id.in_(list(alert_ids)))
    if exclude:
        query = query.where(d.alert_id.not_in(list(exclude)))
    if limit is not None:
        query = query.limit(limit)
    if store.dialect == "postgresql":
        query = query.with_for_update(of=alert_deliveries, skip_locked=True)
    out: list[Claim] = []
    with store._errors("claiming deliveries"), store._write() as conn:
        for row in conn.execute(query).all():
            orphaned = row.lease_owner is not None
            taken = conn.execute(
                alert_deliveries.update()
                .where(d.alert_id == row.alert_id, d.channel == row.channel, d.status.in_(_OPEN), free)
                .values(lease_owner=owner, lease_until=until, attempts=d.attempts + 1,
                        last_attempt_at=now, orphaned=d.orphaned + (1 if orphaned else 0))
            ).rowcount
            if taken != 1:
                continue
            if orphaned:
                logger.warning(
                    "delivery of alert %s on %s was claimed by %s, which never recorded the outcome "
                    "(crashed between sending and recording?): sending it again with the same "
                    "idempotency key", row.alert_id, row.channel, row.lease_owner,
                )
            out.append(Claim(row.alert_id, row.channel, row.payload, owner, until, row.attempts + 1, orphaned))
    return out


def has_open_deliveries(store: Any, channels: Sequence[str]) -> bool:
    """Whether any pending / failed delivery on ``channels`` is free to claim (one cheap read)."""
    if not channels:
        return False
    d = alert_deliveries.c
    query = sa.select(d.alert_id).where(
        d.status.in_(_OPEN), d.channel.in_(list(channels)),
        sa.or_(d.lease_until.is_(None), d.lease_until < _now())).limit(1)
    with store._errors("checking deliveries"), store._read() as conn:
        return conn.execute(query).first() is not None


def refresh_alert_status(conn: sa.Connection, alert_id: str) -> None:
    """Set an alert's status from its deliveries (suppressed alerts stay suppressed)."""
    statuses = set(conn.execute(sa.select(alert_deliveries.c.status).where(
        alert_deliveries.c.alert_id == alert_id)).scalars())
    overall = "failed" if "failed" in statuses else "pending" if "pending" in statuses else "delivered"
    conn.execute(
        alerts.update()
        .where(alerts.c.alert_id == alert_id, alerts.c.status != "suppressed")
        .values(status=overall)
    )


def record_claimed(store: Any, claim: Claim, *, status: str, error: str | None) -> bool:
    """Record the outcome of a claimed delivery; False when the lease was lost meanwhile."""
    now = _now()
    d = alert_deliveries.c
    with store._errors("recording a delivery"), store._write() as conn:
        done = conn.execute(
            alert_deliveries.update()
            .where(d.alert_id == claim.alert_id, d.channel == claim.channel, d.lease_owner == claim.owner,
                   d.status != "delivered")
            .values(status=status, last_error=error, lease_owner=None, lease_until=None,
                    delivered_at=now if status == "delivered" else None)
        ).rowcount
        if done:
            refresh_alert_status(conn, claim.alert_id)
    if not done:
        logger.warning(
            "delivery of alert %s on %s: the lease expired before the outcome (%s) was recorded; "
            "another sender may repeat it with the same idempotency key", claim.alert_id, claim.channel, status,
        )
    return bool(done)
