"""Memory: items with provenance, their vectors, keyword index, meta.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memory_items",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("subject", sa.String(200)),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("superseded_by", sa.String(200)),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
    )
    op.create_index("ix_memory_kind_status", "memory_items", ["kind", "status"])
    op.create_index("ix_memory_subject", "memory_items", ["subject"])
    op.create_table(
        "memory_vectors",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "memory_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        # Keyword search: FTS5 with Porter stemming, kept in step by the store.
        op.execute("CREATE VIRTUAL TABLE memory_fts USING fts5(item_id UNINDEXED, text, "
                   "tokenize='porter unicode61')")
    else:
        op.execute("ALTER TABLE memory_items ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
                   "(to_tsvector('english', text)) STORED")
        op.execute("CREATE INDEX ix_memory_tsv ON memory_items USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE memory_fts")
    for table in ("memory_meta", "memory_vectors", "memory_items"):
        op.drop_table(table)
