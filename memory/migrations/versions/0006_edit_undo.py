"""Edit before approve and undo windows: what an approval was shown (a hash per step), who is
editing a card, and until when an approved step is held.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from memory.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("approvals", sa.Column("bound", sa.JSON))
    op.add_column("approvals", sa.Column("editing", sa.JSON))
    op.add_column("plan_steps", sa.Column("hold_until", UTCDateTime()))


def downgrade() -> None:
    op.drop_column("plan_steps", "hold_until")
    op.drop_column("approvals", "editing")
    op.drop_column("approvals", "bound")
