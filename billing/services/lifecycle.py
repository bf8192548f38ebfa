"""Subscription status changes, each written to the event log with its reason."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.model import InvoiceStatus, SubscriptionStatus
from billing.domain.periods import next_due
from billing.services.audit import record_event
from billing.storage.tables import Invoice, Subscription


def change_status(
    session: Session,
    sub: Subscription,
    to: SubscriptionStatus,
    now: datetime,
    reason: str,
    *,
    actor: str = "system",
    invoice_id: int | None = None,
) -> None:
    """Move ``sub`` to ``to`` and log the change (from, to, why, who)."""
    record_event(
        session,
        now,
        "subscription_status",
        reason,
        subscription_id=sub.id,
        invoice_id=invoice_id,
        from_state=sub.status,
        to_state=to.value,
        actor=actor,
    )
    sub.status = to.value
    sub.updated_at = now


def recover(
    session: Session,
    sub: Subscription,
    now: datetime,
    reason: str,
    *,
    statuses: Collection[SubscriptionStatus],
    actor: str = "system",
    invoice_id: int | None = None,
) -> bool:
    """A subscription in dunning (one of ``statuses``) with no failing open invoice left is
    active again: its dunning deadline is dropped and, after a suspension, billing restarts
    from ``now`` (periods missed while suspended are not billed; a cancellation requested
    for the end of the period stays requested). Returns whether it changed."""
    if sub.status not in {s.value for s in statuses}:
        return False
    failing = session.scalar(
        select(Invoice.id)
        .where(
            Invoice.subscription_id == sub.id,
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.failing_since.is_not(None),
        )
        .limit(1)
    )
    if failing is not None:
        return False
    suspended = sub.status == SubscriptionStatus.SUSPENDED
    if suspended and sub.ends_at is None and (sub.next_charge_at or now) <= now:
        sub.next_charge_at = next_due(sub.schedule, sub.timezone, now)
    change_status(
        session, sub, SubscriptionStatus.ACTIVE, now, reason, actor=actor, invoice_id=invoice_id
    )
    sub.cancel_at = None
    return True
