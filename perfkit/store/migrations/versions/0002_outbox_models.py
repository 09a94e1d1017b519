"""Delivery leases (the alert outbox) and model identity.

Adds ``lease_owner``, ``lease_until`` and ``orphaned`` to ``perfkit_alert_deliveries`` and
the ``perfkit_models`` table (task, label set, scores expected per model). Existing models
get their identity from their first stored batch when they are next tracked.

Revision ID: 0002_outbox_models
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_outbox_models"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("perfkit_alert_deliveries") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("orphaned", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "perfkit_models",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("classes", _json(), nullable=True),
        sa.Column("positive_label", _json(), nullable=True),
        sa.Column("has_scores", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("perfkit_models")
    with op.batch_alter_table("perfkit_alert_deliveries") as batch:
        batch.drop_column("orphaned")
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
