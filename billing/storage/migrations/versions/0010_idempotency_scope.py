"""idempotency keys scoped per principal and endpoint (and expiring, which needs no column)

Revision ID: 0010
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("principal", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.drop_constraint(batch_op.f("uq_idempotency_keys_key"), type_="unique")
        batch_op.create_unique_constraint(
            "uq_idempotency_keys_scope", ["principal", "endpoint", "key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_constraint("uq_idempotency_keys_scope", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_idempotency_keys_key"), ["key"])
        batch_op.drop_column("principal")
