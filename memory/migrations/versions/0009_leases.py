"""Leases for running several instances on one database: a plan is continued by one instance
at a time (``lease_owner`` until ``lease_until``; ``wanted``: someone asked while it was held),
and a queued reply is sent by one. And an index on the audit log's plan: a card's cost is the
sum of its plan's model calls (a full scan of 100,000 events per card made the console's queue
of 500 cards take 540 ms).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild on SQLite): nullable, or with a server default.
    op.add_column("plans", sa.Column("lease_owner", sa.String(100)))
    op.add_column("plans", sa.Column("lease_until", UTCDateTime()))
    op.add_column("plans", sa.Column("wanted", sa.Boolean, nullable=False,
                                     server_default=sa.false()))
    op.add_column("deliveries", sa.Column("lease_owner", sa.String(100)))
    op.add_column("deliveries", sa.Column("lease_until", UTCDateTime()))
    op.create_index("ix_audit_plan", "audit_events", ["plan_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_plan", "audit_events")
    with op.batch_alter_table("deliveries") as deliveries:
        deliveries.drop_column("lease_until")
        deliveries.drop_column("lease_owner")
    with op.batch_alter_table("plans") as plans:
        plans.drop_column("wanted")
        plans.drop_column("lease_until")
        plans.drop_column("lease_owner")
