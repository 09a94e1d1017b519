"""Initial perfkit store schema: batches, baselines, alerts, alert deliveries.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _pk() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(nullable: bool = False) -> dict:
    return {"type_": sa.DateTime(timezone=True), "nullable": nullable}


def upgrade() -> None:
    op.create_table(
        "perfkit_batches",
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("segment", sa.String(255), nullable=False, server_default=""),
        sa.Column("batch_id", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(255), nullable=True),
        sa.Column("timestamp", **_ts()),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("sample_count", sa.BigInteger(), nullable=False),
        sa.Column("performance_score", sa.Float(), nullable=True),
        sa.Column("labels_pending", sa.Boolean(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", **_ts()),
        sa.Column("updated_at", **_ts()),
        sa.UniqueConstraint("model", "segment", "batch_id", name="uq_perfkit_batches_key"),
    )
    op.create_index(
        "ix_perfkit_batches_model_segment_ts",
        "perfkit_batches",
        ["model", "segment", "timestamp"],
    )
    op.create_index("ix_perfkit_batches_timestamp", "perfkit_batches", ["timestamp"])

    op.create_table(
        "perfkit_baselines",
        sa.Column("id", _pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("segment", sa.String(255), nullable=False, server_default=""),
        sa.Column("model_version", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("sample_count", sa.BigInteger(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("created_at", **_ts()),
        sa.UniqueConstraint("model", "segment", "version", name="uq_perfkit_baselines_version"),
    )

    op.create_table(
        "perfkit_alerts",
        sa.Column("alert_id", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("segment", sa.String(255), nullable=False, server_default=""),
        sa.Column("metric", sa.String(255), nullable=True),
        sa.Column("alert_type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("timestamp", **_ts()),
        sa.Column("batch_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "suppressed_by",
            sa.String(255),
            sa.ForeignKey(
                "perfkit_alerts.alert_id",
                ondelete="SET NULL",
                name="fk_perfkit_alerts_suppressed_by",
            ),
            nullable=True,
        ),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", **_ts()),
    )
    op.create_index(
        "ix_perfkit_alerts_key_ts",
        "perfkit_alerts",
        ["model", "segment", "metric", "alert_type", "timestamp"],
    )
    op.create_index("ix_perfkit_alerts_timestamp", "perfkit_alerts", ["timestamp"])

    op.create_table(
        "perfkit_alert_deliveries",
        sa.Column(
            "alert_id",
            sa.String(255),
            sa.ForeignKey(
                "perfkit_alerts.alert_id",
                ondelete="CASCADE",
                name="fk_perfkit_alert_deliveries_alert",
            ),
            nullable=False,
        ),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", **_ts(nullable=True)),
        sa.Column("delivered_at", **_ts(nullable=True)),
        sa.PrimaryKeyConstraint("alert_id", "channel", name="pk_perfkit_alert_deliveries"),
    )
    op.create_index(
        "ix_perfkit_alert_deliveries_status", "perfkit_alert_deliveries", ["status"]
    )


def downgrade() -> None:
    op.drop_table("perfkit_alert_deliveries")
    op.drop_index("ix_perfkit_alerts_timestamp", table_name="perfkit_alerts")
    op.drop_index("ix_perfkit_alerts_key_ts", table_name="perfkit_alerts")
    op.drop_table("perfkit_alerts")
    op.drop_table("perfkit_baselines")
    op.drop_index("ix_perfkit_batches_timestamp", table_name="perfkit_batches")
    op.drop_index("ix_perfkit_batches_model_segment_ts", table_name="perfkit_batches")
    op.drop_table("perfkit_batches")
