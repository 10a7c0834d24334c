"""Plan steps as stored objects: action, dependencies, risk, diff, status, key, receipt, error.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_steps",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("action", sa.JSON, nullable=False),
        sa.Column("depends_on", sa.JSON, nullable=False),
        sa.Column("risk", sa.String(8), nullable=False),
        sa.Column("diff", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("receipt", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_plan_steps_key", "plan_steps", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_plan_steps_key", "plan_steps")
    op.drop_table("plan_steps")
