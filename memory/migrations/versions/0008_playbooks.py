"""Playbooks: the run ledger, the versions seen, and the operator's pause.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "playbook_runs",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("playbook", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("occurrence", UTCDateTime(), nullable=False),
        sa.Column("manual", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("plan_id", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_playbook_runs_playbook", "playbook_runs", ["playbook", "started_at"])
    op.create_table(
        "playbook_versions",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("playbook", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "playbook_state",
        sa.Column("playbook", sa.String(64), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("playbook_state")
    op.drop_table("playbook_versions")
    op.drop_index("ix_playbook_runs_playbook", "playbook_runs")
    op.drop_table("playbook_runs")
