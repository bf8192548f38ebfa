"""The scheduler pass's first step: one invoice per due billing period, set-wise.

It decides which subscriptions are due at ``now`` (oldest first, paged by (next_charge_at,
id) so a batch costs the batch, not the burst), which periods open (the catch-up policy)
and whether the new invoice is charged at once (not while an older one is in dunning).
It never charges, never enqueues, and never opens a second invoice for one period: the
UNIQUE (subscription, period) constraints refuse it and the row is left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, true, tuple_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from billing.domain.dunning_policy import CatchUpMode, DunningPolicy
from billing.domain.model import BILLABLE_STATUSES, CHARGEABLE_STATUSES, SubscriptionStatus
from billing.domain.periods import due_periods
from billing.services.collection import subscriptions_in_dunning
from billing.services.outbox import stage_invoices_created
from billing.services.period_invoices import invoice_row, opened_events, skipped_events
from billing.storage.bulk import bulk_insert, bulk_update
from billing.storage.database import Database
from billing.storage.tables import Event, Invoice, Subscription

#: A keyset cursor: the (due time, id) of the last row a batch claimed.
Cursor = tuple[datetime | None, int]


class InvoiceOpening:
    """Mixed into :class:`~billing.services.pipeline.scheduler_pass.Scheduler`."""

    db: Database
    policy: DunningPolicy
    batch_size: int

    def open_due_invoices(self, now: datetime) -> int:
        """Open one invoice per due billing period and advance each subscription."""
        return sum(self.open_due_batches(now))

    def open_due_batches(self, now: datetime) -> Iterator[int]:
        """Open the due invoices a batch (one transaction) at a time; yields each batch's
        count after its commit.

        Works on plain rows (no ORM objects) and set-wise statements: at month start a
        million subscriptions can fall due in the same minute. Pages by (next_charge_at, id)
        on ``ix_subscriptions_billable_due``, so a batch costs the batch, not the rows
        already opened; a row another scheduler holds is skipped and found by the next pass.
        """
        after: Cursor | None = None
        while True:
            with self.db.transaction() as session:
                query = (
                    select(
                        Subscription.id,
                        Subscription.next_charge_at,
                        Subscription.schedule,
                        Subscription.timezone,
                        Subscription.status,
                        Subscription.amount,
                        Subscription.currency,
                    )
                    .where(
                        Subscription.status.in_(sorted(s.value for s in BILLABLE_STATUSES)),
                        Subscription.next_charge_at <= now,
                        after_key(Subscription.next_charge_at, Subscription.id, after),
                    )
                    .order_by(Subscription.next_charge_at, Subscription.id)
                    .limit(self.batch_size)
                )
                due: Sequence[Any] = session.execute(self.db.skip_locked(query)).all()
                if not due:
                    return
                after = (due[-1][1], due[-1][0])
                in_dunning = subscriptions_in_dunning(session, [row[0] for row in due])
                invoices, advances, skipped = self._plan(due, now, in_dunning)
                bulk_update(session, Subscription, advances)
                inserted = bulk_insert(
                    session,
                    Invoice,
                    invoices,
                    returning=("id", "subscription_id", "period_start"),
                    conflict_columns=(),  # (subscription, period) or (subscription, local period)
                )
                bulk_insert(session, Event, skipped + opened_events(inserted, now))
                stage_invoices_created(session, inserted, now)
            yield len(inserted)

    def _plan(
        self, due: Sequence[Any], now: datetime, in_dunning: set[int]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Invoice rows, subscription advances and ``period_skipped`` events for due rows.

        One collection at a time, oldest first (billing.domain.collection): the invoice of a
        subscription in dunning (with a failing open invoice) plans no charge; it waits for
        the older one and is charged when that one is paid or closed.
        """
        catch_up_all = self.policy.catch_up.mode == CatchUpMode.ALL
        invoices, advances, skipped = [], [], []
        for sub_id, due_at, schedule, timezone, status, amount, currency in due:
            plan = due_periods(schedule, timezone, due_at, now, catch_up_all=catch_up_all)
            chargeable = SubscriptionStatus(status) in CHARGEABLE_STATUSES and (
                sub_id not in in_dunning
            )
            invoices.append(
                invoice_row(sub_id, plan.open, schedule, timezone, amount, currency, now)
                | {"next_attempt_at": plan.open if chargeable else None}
            )
            advances.append(
                {"id": sub_id, "next_charge_at": plan.next_charge_at, "updated_at": now}
            )
            skipped += skipped_events(sub_id, plan.skipped, plan.open, now)
        return invoices, advances, skipped


def after_key(
    at: InstrumentedAttribute[datetime | None],
    id_: InstrumentedAttribute[int],
    cursor: Cursor | None,
) -> ColumnElement[bool]:
    """Keyset paging: rows after ``cursor`` in (at, id) order (all rows for None)."""
    return true() if cursor is None else tuple_(at, id_) > cursor  # bound as the columns
