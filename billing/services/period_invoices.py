"""The invoice of one billing period: its row, its events, opening one that is due, and
moving a subscription to a new schedule.

Decides: what a new open invoice looks like (its UTC period and its local wall-clock
period), how skipped periods are recorded, and what happens to the current period when
the schedule changes. Must never: drop a period that was already due, bill again time
that is already invoiced, insert an invoice that breaks UNIQUE (subscription, period) or
(subscription, local period) (such a row is skipped, not raised), or charge anything
itself (the scheduler pass creates attempts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from billing.domain.model import (
    BILLABLE_STATUSES,
    CHARGEABLE_STATUSES,
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.domain.periods import local_period_key, next_charge_after_change
from billing.services.outbox import stage_invoices_created
from billing.storage.bulk import bulk_insert
from billing.storage.tables import Event, Invoice, Subscription

#: Missed periods named one event each; any further ones share one summary event.
MAX_SKIPPED_EVENTS = 100


def invoice_row(
    sub_id: int,
    period: datetime,
    schedule: str,
    timezone: str,
    amount: int,
    currency: str,
    now: datetime,
) -> dict[str, Any]:
    """A new open invoice for one billing period, charged at the period's start."""
    return {
        "subscription_id": sub_id,
        "period_start": period,
        "local_period": local_period_key(schedule, timezone, period),
        "amount": amount,
        "currency": currency,
        "status": InvoiceStatus.OPEN.value,
        "next_attempt_at": period,
        "attempt_count": 0,
        "created_at": now,
        "updated_at": now,
    }


def opened_events(inserted: Sequence[tuple[Any, ...]], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "at": now,
            "kind": "invoice_opened",
            "reason": f"billing period {period:%Y-%m-%d %H:%M} UTC is due",
            "subscription_id": sub_id,
            "invoice_id": invoice_id,
            "to_state": "open",
            "actor": "scheduler",
        }
        for invoice_id, sub_id, period in inserted
    ]


def skipped_events(
    sub_id: int, skipped: Sequence[datetime], opened: datetime, now: datetime
) -> list[dict[str, Any]]:
    """One ``period_skipped`` event per missed period (the last ones summed up in one
    event past MAX_SKIPPED_EVENTS, so a minutely schedule after an outage stays bounded)."""
    events = [
        {
            "at": now,
            "kind": "period_skipped",
            "reason": (
                f"billing period {period:%Y-%m-%d %H:%M} UTC was missed while billing was "
                f"behind and is not billed (catch-up: latest; billed {opened:%Y-%m-%d %H:%M} UTC)"
            ),
            "subscription_id": sub_id,
            "invoice_id": None,
            "to_state": None,
            "actor": "scheduler",
        }
        for period in skipped[:MAX_SKIPPED_EVENTS]
    ]
    if len(skipped) > MAX_SKIPPED_EVENTS:
        rest = skipped[MAX_SKIPPED_EVENTS:]
        events.append(
            events[-1]
            | {
                "reason": (
                    f"{len(rest)} more billing periods from {rest[0]:%Y-%m-%d %H:%M} to "
                    f"{rest[-1]:%Y-%m-%d %H:%M} UTC were missed and are not billed"
                )
            }
        )
    return events


def open_due_period(session: Session, sub: Subscription, period: datetime, now: datetime) -> bool:
    """Open the invoice of one period that is already due (a schedule change must not drop
    it); False when that period (or its local period) already has one."""
    row = invoice_row(sub.id, period, sub.schedule, sub.timezone, sub.amount, sub.currency, now)
    if SubscriptionStatus(sub.status) not in CHARGEABLE_STATUSES:
        row["next_attempt_at"] = None
    inserted = bulk_insert(
        session,
        Invoice,
        [row],
        returning=("id", "subscription_id", "period_start"),
        conflict_columns=(),
    )
    bulk_insert(session, Event, opened_events(inserted, now))
    stage_invoices_created(session, inserted, now)
    return bool(inserted)


def change_schedule(
    session: Session, sub: Subscription, schedule: str, timezone: str, now: datetime
) -> list[str]:
    """Give ``sub`` a new schedule and timezone and its correct next step (see
    billing.domain.periods.next_charge_after_change): a period already due under the old schedule
    is invoiced now, time already invoiced is never billed again. Returns what changed,
    in words, for the ``subscription_updated`` event."""
    started = session.scalar(select(exists().where(Invoice.subscription_id == sub.id)))
    plan = next_charge_after_change(
        (sub.schedule, sub.timezone),
        (schedule, timezone),
        sub.next_charge_at,
        now,
        period_started=bool(started),
        billable=SubscriptionStatus(sub.status) in BILLABLE_STATUSES,
    )
    changes = []
    if plan.open_due is not None and open_due_period(session, sub, plan.open_due, now):
        changes.append(f"period {plan.open_due:%Y-%m-%d %H:%M} UTC that was due is invoiced")
    sub.schedule, sub.timezone = schedule, timezone
    if sub.next_charge_at is not None:
        sub.next_charge_at = plan.next_charge_at
        changes.append(f"next charge {plan.next_charge_at:%Y-%m-%d %H:%M} UTC")
    return changes
