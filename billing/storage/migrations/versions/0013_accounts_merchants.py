"""merchant accounts: a subscription's account and its customer email/phone for fiscal
receipts; one circuit breaker row per account (``gateway_circuits``, keyed by the account
name) instead of the single ``gateway_circuit`` row, which becomes the ``default`` one

Revision ID: 0013_accounts_merchants
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_accounts_merchants"
down_revision = "0012"
branch_labels = None
depends_on = None

_COPY_UP = (
    "INSERT INTO gateway_circuits (account, state, reason, consecutive_failures, trips, "
    "opened_at, retry_at, updated_at) SELECT 'default', state, reason, consecutive_failures, "
    "trips, opened_at, retry_at, updated_at FROM gateway_circuit WHERE id = 1"
)
_COPY_DOWN = (
    "INSERT INTO gateway_circuit (id, state, reason, consecutive_failures, trips, "
    "opened_at, retry_at, updated_at) SELECT 1, state, reason, consecutive_failures, "
    "trips, opened_at, retry_at, updated_at FROM gateway_circuits WHERE account = 'default'"
)


def _circuit_table(name: str, key: sa.Column) -> None:  # type: ignore[type-arg]
    op.create_table(
        name,
        key,
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("trips", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(key.name, name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "merchant_account", sa.String(length=32), nullable=False, server_default="default"
            )
        )
        batch_op.add_column(sa.Column("customer_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("customer_phone", sa.String(length=16), nullable=True))
    _circuit_table("gateway_circuits", sa.Column("account", sa.String(length=32), nullable=False))
    op.execute(_COPY_UP)
    op.drop_table("gateway_circuit")


def downgrade() -> None:
    _circuit_table("gateway_circuit", sa.Column("id", sa.Integer(), nullable=False))
    op.execute(_COPY_DOWN)
    op.drop_table("gateway_circuits")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("customer_phone")
        batch_op.drop_column("customer_email")
        batch_op.drop_column("merchant_account")
