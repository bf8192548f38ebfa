"""a status check waiting in the queue: charge_attempts.check_enqueued_at

Revision ID: 0015_check_enqueued
Revises: 0013_twophase_capture_decline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_check_enqueued"
down_revision = "0013_twophase_capture_decline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charge_attempts") as batch:
        batch.add_column(sa.Column("check_enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("charge_attempts") as batch:
        batch.drop_column("check_enqueued_at")
