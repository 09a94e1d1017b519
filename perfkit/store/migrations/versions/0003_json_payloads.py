"""PostgreSQL: batch and baseline states and metrics as ``json`` (text kept as written).

``jsonb`` rebuilds a document's text from its binary form on every read, which made
reading a year of 5-class states take 2.6 s on the server alone (0.6 s as ``json``);
nothing queries inside these columns. SQLite stores JSON as text already: no change there.

Revision ID: 0003_json_payloads
Revises: 0002_outbox_models
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_json_payloads"
down_revision = "0002_outbox_models"
branch_labels = None
depends_on = None

_COLUMNS = (("perfkit_batches", "state"), ("perfkit_batches", "metrics"),
            ("perfkit_baselines", "state"), ("perfkit_baselines", "metrics"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.JSON(), existing_type=JSONB(), existing_nullable=False,
                        postgresql_using=f"{column}::json")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=JSONB(), existing_type=sa.JSON(), existing_nullable=False,
                        postgresql_using=f"{column}::jsonb")
