"""index charge_attempts.gateway_order_id (callbacks look attempts up by mdOrder)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_charge_attempts_gateway_order_id", "charge_attempts", ["gateway_order_id"])


def downgrade() -> None:
    op.drop_index("ix_charge_attempts_gateway_order_id", table_name="charge_attempts")
