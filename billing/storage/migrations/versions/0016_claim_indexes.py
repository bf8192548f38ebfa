"""claim indexes that do not grow with the burst: partial and keyset-ordered

A month-start pass claims its rows in batches. Each claim must cost the batch, not the
burst: the due subscriptions in (next_charge_at, id) order among billable ones only, the
due invoices in (status, next_attempt_at, id) order, the outbox rows still undispatched
only, the operator's in-flight charges only, and the pending attempts by enqueue time.
Without them, at 200,000 due, every batch sorted all due subscriptions, scanned every
attempt for a manual one, and walked every dispatched outbox row.

Revision ID: 0016_claim_indexes
Revises: 0015_check_enqueued
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_claim_indexes"
down_revision = "0015_check_enqueued"
branch_labels = None
depends_on = None

BILLABLE = "status IN ('active', 'held', 'needs_payment_method', 'past_due')"
MANUAL_IN_FLIGHT = "trigger = 'manual' AND state IN ('pending', 'sending', 'unknown')"
PENDING = "state = 'pending'"
UNDISPATCHED = "dispatched_at IS NULL"


def _partial(name: str, table: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        table,
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    _partial("ix_subscriptions_billable_due", "subscriptions", ["next_charge_at", "id"], BILLABLE)
    op.drop_index("ix_invoices_due", table_name="invoices")
    op.create_index("ix_invoices_due", "invoices", ["status", "next_attempt_at", "id"])
    _partial(
        "ix_charge_attempts_manual_in_flight", "charge_attempts", ["invoice_id"], MANUAL_IN_FLIGHT
    )
    _partial("ix_charge_attempts_pending_enqueued", "charge_attempts", ["enqueued_at"], PENDING)
    op.drop_index("ix_outbox_events_undispatched", table_name="outbox_events")
    _partial("ix_outbox_events_undispatched", "outbox_events", ["id"], UNDISPATCHED)


def downgrade() -> None:
    op.drop_index("ix_outbox_events_undispatched", table_name="outbox_events")
    op.create_index("ix_outbox_events_undispatched", "outbox_events", ["dispatched_at", "id"])
    op.drop_index("ix_charge_attempts_pending_enqueued", table_name="charge_attempts")
    op.drop_index("ix_charge_attempts_manual_in_flight", table_name="charge_attempts")
    op.drop_index("ix_invoices_due", table_name="invoices")
    op.create_index("ix_invoices_due", "invoices", ["status", "next_attempt_at"])
    op.drop_index("ix_subscriptions_billable_due", table_name="subscriptions")
