"""two-phase captures (deposit.do) and stuck-order declines (decline.do) on charge attempts

Revision ID: 0013_twophase_capture_decline
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_twophase_capture_decline"
down_revision = "0013_accounts_merchants"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("charge_attempts") as batch:
        batch.add_column(sa.Column("capture_sent_at", _AT, nullable=True))
        batch.add_column(sa.Column("capture_result", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("decline_sent_at", _AT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("charge_attempts") as batch:
        batch.drop_column("decline_sent_at")
        batch.drop_column("capture_result")
        batch.drop_column("capture_sent_at")
