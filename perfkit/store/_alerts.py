"""Store methods for alerts and the delivery outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from perfkit.exceptions import (
    InputTypeError,
    RecordNotFoundError,
    StoreError,
    ValidationError,
)
from perfkit.store import _lean, _outbox, _tracking
from perfkit.store.records import (
    ALL_SEGMENTS,
    BatchRecord,
    encode_json,
    to_utc,
)
from perfkit.store.schema import (
    ALERT_STATUSES,
    DELIVERY_STATUSES,
    alert_deliveries,
    alerts,
)

if TYPE_CHECKING:
    import pandas as pd


from perfkit.store._common import (
    ALERT_COLUMNS,
    _check_name,
    _filters,
    _keep_none,
    _now,
    _seg,
    _unseg,
    mask_urls,
)


class _Alerts:
    """Methods of :class:`perfkit.store.Store` (see there)."""

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
        >>> from perfkit.store import BatchRecord, Store
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
        if self._lean:
            return _lean.write_tracked(self, record, **kwargs)
        return _tracking.write_tracked(self, record, **kwargs)

    def model_identity(self, model: str) -> dict | None:
        """The stored identity of ``model`` (``task``, ``classes``, ``positive_label``,
        ``has_scores``), or None before its first labelled batch or baseline."""
        _check_name(model, "model")
        if self._lean:
            return _lean.read_identity(self, model)
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

    def has_open_deliveries(self, channels: Sequence[str]) -> bool:
        """Whether a pending / failed delivery on ``channels`` is free to claim."""
        if self._lean:
            return _lean.has_open_deliveries(self, list(channels))
        return _outbox.has_open_deliveries(self, channels)

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
