"""Durable outbound delivery queue for chat platforms.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("chat", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_deliveries_pending", "deliveries", ["status", "channel", "id"])


def downgrade() -> None:
    op.drop_table("deliveries")
