"""Table definitions of the history store (one schema for SQLite and PostgreSQL).

The tables are SQLAlchemy Core :class:`~sqlalchemy.Table` objects on :data:`metadata`.
The Alembic migrations in ``perfkit/store/migrations`` create exactly these tables;
:data:`SCHEMA_REVISION` is the revision a store written by this version of perfkit has.

Tables
------
``perfkit_batches``
    One row per scored batch; unique ``(model, segment, batch_id)``; index
    ``(model, segment, timestamp)``. ``segment`` is ``''`` for the whole population.
``perfkit_baselines``
    Versioned baselines; unique ``(model, segment, version)``.
``perfkit_alerts``
    One row per alert; ``suppressed_by`` references another alert.
``perfkit_alert_deliveries``
    One row per (alert, channel): the delivery outbox. ``attempts`` counts claims;
    ``lease_owner`` / ``lease_until`` hold the claim of the process sending it;
    ``orphaned`` counts claims that expired unrecorded (a crash between sending and
    recording: the delivery may have been sent twice, with the same idempotency key).
``perfkit_models``
    One row per model: its task, label set (classification) and whether it had scores.
``perfkit_alembic_version``
    Alembic's revision table (named so it cannot clash with an application's own).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "ALERT_STATUSES",
    "DELIVERY_STATUSES",
    "SCHEMA_REVISION",
    "VERSION_TABLE",
    "UTCDateTime",
    "alert_deliveries",
    "alerts",
    "baselines",
    "batches",
    "json_type",
    "metadata",
    "models",
]

SCHEMA_REVISION = "0003_json_payloads"
"""Alembic revision of the schema this perfkit version reads and writes."""

VERSION_TABLE = "perfkit_alembic_version"
"""Name of Alembic's version table in a perfkit store."""

ALERT_STATUSES: tuple[str, ...] = ("delivered", "pending", "failed", "suppressed", "recorded")
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "delivered", "failed")


class UTCDateTime(sa.types.TypeDecorator):
    """``DateTime(timezone=True)`` that always stores and returns UTC.

    SQLite has no time zones: values are stored as naive UTC text (fixed width, so text
    order is time order). PostgreSQL stores ``timestamptz``. Both return aware UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:  # internal callers always pass aware values
            raise ValueError(f"naive datetime {value!r} reached the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine:
    """Return the JSON column type: JSON on SQLite, JSONB on PostgreSQL."""
    return sa.JSON().with_variant(JSONB(), "postgresql")


def text_json_type() -> sa.types.TypeEngine:
    """Return the type of the large JSON payloads (states, metrics): JSON on both backends.

    PostgreSQL's ``json`` keeps the text as written, so reading it is a copy, where
    ``jsonb`` is rebuilt from its binary form on every read (a year of 5-class states:
    0.6 s instead of 2.6 s on the server alone), and the text keeps perfkit's key order,
    which lets a merge for evaluation skip the estimate-only fields before parsing
    (:func:`perfkit.metrics.state.state_dict_for_evaluation`). Nothing queries inside them.
    """
    return sa.JSON()


metadata = sa.MetaData()

batches = sa.Table(
    "perfkit_batches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("segment", sa.String(255), nullable=False, server_default=""),
    sa.Column("batch_id", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(255), nullable=True),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("sample_count", sa.BigInteger(), nullable=False),
    sa.Column("performance_score", sa.Float(), nullable=True),
    sa.Column("labels_pending", sa.Boolean(), nullable=False),
    sa.Column("state", text_json_type(), nullable=False),
    sa.Column("metrics", text_json_type(), nullable=False),
    sa.Column("metadata", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("model", "segment", "batch_id", name="uq_perfkit_batches_key"),
    sa.Index("ix_perfkit_batches_model_segment_ts", "model", "segment", "timestamp"),
    sa.Index("ix_perfkit_batches_timestamp", "timestamp"),
)

baselines = sa.Table(
    "perfkit_baselines",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("segment", sa.String(255), nullable=False, server_default=""),
    sa.Column("model_version", sa.String(255), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("sample_count", sa.BigInteger(), nullable=False),
    sa.Column("state", text_json_type(), nullable=False),
    sa.Column("metrics", text_json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("model", "segment", "version", name="uq_perfkit_baselines_version"),
)

alerts = sa.Table(
    "perfkit_alerts",
    metadata,
    sa.Column("alert_id", sa.String(255), primary_key=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("segment", sa.String(255), nullable=False, server_default=""),
    sa.Column("metric", sa.String(255), nullable=True),
    sa.Column("alert_type", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(32), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("batch_id", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column(
        "suppressed_by",
        sa.String(255),
        sa.ForeignKey("perfkit_alerts.alert_id", ondelete="SET NULL",
                      name="fk_perfkit_alerts_suppressed_by"),
        nullable=True,
    ),
    sa.Column("payload", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_perfkit_alerts_key_ts", "model", "segment", "metric", "alert_type",
             "timestamp"),
    sa.Index("ix_perfkit_alerts_timestamp", "timestamp"),
)

alert_deliveries = sa.Table(
    "perfkit_alert_deliveries",
    metadata,
    sa.Column(
        "alert_id",
        sa.String(255),
        sa.ForeignKey("perfkit_alerts.alert_id", ondelete="CASCADE",
                      name="fk_perfkit_alert_deliveries_alert"),
        nullable=False,
    ),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("orphaned", sa.Integer(), nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("alert_id", "channel", name="pk_perfkit_alert_deliveries"),
    sa.Index("ix_perfkit_alert_deliveries_status", "status"),
)

models = sa.Table(
    "perfkit_models",
    metadata,
    sa.Column("model", sa.String(255), primary_key=True),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("classes", json_type(), nullable=True),
    sa.Column("positive_label", json_type(), nullable=True),
    sa.Column("has_scores", sa.Boolean(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
"""Model identity: task, label set (grows when a new class appears), scores expected."""
