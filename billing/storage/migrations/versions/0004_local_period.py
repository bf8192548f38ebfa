"""local period: an invoice's billing period on the customer's wall clock, unique per subscription

When clocks fall back, one wall time (02:30 in Europe/Berlin on 2026-10-25) occurs twice
at two UTC instants; UNIQUE (subscription_id, period_start) cannot see that they are the
same period. ``local_period`` ("2026-10-25T02:30") can. Invoices opened before this
revision keep NULL (NULLs never conflict): their periods are already billed.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("local_period", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(
            "uq_invoices_local_period", ["subscription_id", "local_period"]
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_invoices_local_period", type_="unique")
        batch_op.drop_column("local_period")
