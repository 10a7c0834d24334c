"""The spine: inbox, plans, approvals, outbox, audit_events (append-only), jobs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("inbox_id", sa.String(200)),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("inbound", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_plans_status", "plans", ["status"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("chat", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("risk", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("diff", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at", TS),
        sa.Column("card_refs", sa.JSON, nullable=False),
        sa.Column("receipt_id", sa.String(32)),
        sa.Column("completed_at", TS),
    )
    op.create_index("ix_approvals_status", "approvals", ["status"])
    op.create_index("ix_approvals_plan", "approvals", ["plan_id"])
    op.create_table(
        "outbox",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("action", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("receipt", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(250), unique=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(32)),
        sa.Column("plan_id", sa.String(64)),
        sa.Column("intent", sa.String(64)),
        sa.Column("decision", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(100)),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("receipt_id", sa.String(32)),
        sa.Column("model", sa.String(100)),
        sa.Column("prompt_version", sa.String(32)),
        sa.Column("cost_usd", sa.Float),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_audit_at", "audit_events", ["at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("missed_policy", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", TS),
        sa.Column("last_run_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "due_at"])

    # The audit log is append-only at the database level, not only by convention.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit_events is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    for table in ("jobs", "audit_events", "outbox", "approvals", "plans", "inbox"):
        op.drop_table(table)
