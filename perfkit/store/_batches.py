"""Store methods for batch records: append, complete, read, count, retention."""

from __future__ import annotations

import math
import numbers
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from perfkit.exceptions import (
    InputTypeError,
    RecordNotFoundError,
    StoreError,
    ValidationError,
)
from perfkit.store import _lean
from perfkit.store._common import (
    _batch_row,
    _bulk,
    _check_name,
    _filters,
    _key_clause,
    _now,
    _pg_text_columns,
    _record_from_row,
    _record_from_text_row,
    _row_time_id,
    _seg,
    _text_columns,
    _text_row_fields,
    _trusted,
    _unseg,
    logger,
)
from perfkit.store.records import (
    ALL_SEGMENTS,
    BatchRecord,
    to_utc,
)
from perfkit.store.schema import (
    alert_deliveries,
    alerts,
    batches,
)


class _Batches:
    """Methods of :class:`perfkit.store.Store` (see there)."""

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
        >>> from perfkit.store import BatchRecord, Store
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
        >>> from perfkit.store import BatchRecord, Store
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
        # SQLite: raw text parsed here in bulk, and (PostgreSQL too) states kept as JSON
        # text until a record's state is used (merges of long histories parse them without
        # keeping them: see merged_state()); the fixed-width UTC text sorts as the times do
        sqlite = self.dialect == "sqlite"
        columns = _text_columns(batches) if sqlite else _pg_text_columns(batches) \
            if self.dialect == "postgresql" else batches.c
        query = sa.select(*columns).where(*clauses)
        with self._errors("records"), _bulk():
            with self._read() as conn:
                result = conn.execute(query)
                at = {k: i for i, k in enumerate(result.keys())}
                rows = result.all()
            rows.sort(key=_row_time_id)  # sorted here: see states()
            if sqlite:
                fields = _text_row_fields(at)
                return [_record_from_text_row(fields(row)) for row in rows]
            if self.dialect == "postgresql":
                return [_record_from_row(row, text=True) for row in rows]
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
        if self._lean:
            return _lean.previous_metrics(self, model, segment, ts, before.id, limit)
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

    def count(self, model: str | None = None, *, segment: Any = ALL_SEGMENTS, start: datetime | None = None,
              end: datetime | None = None, include_pending: bool = True) -> int:
        """Return the number of batch records (of ``model``, or of every model).

        ``segment``, ``start``, ``end`` and ``include_pending`` filter as in :meth:`records`
        (counted in SQL, nothing decoded).
        """
        clauses = self._batch_filters(model, segment, start, end)
        if not include_pending:
            clauses.append(batches.c.labels_pending.is_(sa.false()))
        query = sa.select(sa.func.count()).select_from(batches).where(*clauses)
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
        >>> from perfkit.store import BatchRecord, Store
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
