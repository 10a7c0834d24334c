"""Mail read from the operator's mailbox (position, provenance, triage) and connector health.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("folder", sa.String(200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.String(500), nullable=False),
        sa.Column("from_name", sa.String(300), nullable=False),
        sa.Column("from_addr", sa.String(300), nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("sent_at", UTCDateTime()),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("references", sa.JSON, nullable=False),
        sa.Column("triage", sa.String(16), nullable=False),
        sa.Column("triage_by", sa.String(16), nullable=False),
        sa.Column("notified", sa.Boolean, nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("folder", "uidvalidity", "uid", name="uq_mail_position"),
    )
    op.create_index("ix_mail_message_id", "mail_messages", ["message_id"])
    op.create_table(
        "connector_health",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("retry_at", UTCDateTime()),
        sa.Column("told", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connector_health")
    op.drop_index("ix_mail_message_id", "mail_messages")
    op.drop_table("mail_messages")
