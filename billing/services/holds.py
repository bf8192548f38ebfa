"""Releasing a subscription held because the gateway refused its own charge.

Decides what ``resume`` does for a ``held`` subscription (the gateway refused its amount,
currency or description, or declined that order on the merchant side): it becomes
active again and each open invoice is charged at once, with the subscription's current
(fixed) amount and currency. It must never touch an invoice with a charge in flight or
already paid, never re-price an invoice that took money, and never move anyone else.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from billing.domain.model import IN_FLIGHT_STATES, AttemptState, InvoiceStatus, SubscriptionStatus
from billing.domain.periods import next_due
from billing.services.audit import record_event
from billing.services.lifecycle import change_status
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

__all__ = ["release_hold"]


def release_hold(
    session: Session, sub: Subscription, now: datetime, actor: str, reason: str
) -> list[int]:
    """``held`` → ``active``; returns the open invoices planned for a charge now.

    ``sub`` must be locked by the caller. An open invoice whose amount or currency differ
    from the subscription's (the data the operator just fixed) is re-priced, with an event.
    """
    retried: list[int] = []
    for invoice in session.scalars(
        select(Invoice)
        .where(Invoice.subscription_id == sub.id, Invoice.status == InvoiceStatus.OPEN)
        .order_by(Invoice.period_start)
        .with_for_update()
    ):
        if _has_attempt(session, invoice.id, {s.value for s in IN_FLIGHT_STATES}):
            continue  # its charge settles by itself
        if (invoice.amount, invoice.currency) != (sub.amount, sub.currency):
            if _has_attempt(session, invoice.id, {AttemptState.PAID.value}):
                continue  # pragma: no cover - a paid attempt closes its invoice
            record_event(
                session,
                now,
                "invoice_repriced",
                f"{reason} (held invoice: {invoice.amount} {invoice.currency} → "
                f"{sub.amount} {sub.currency})",
                subscription_id=sub.id,
                invoice_id=invoice.id,
                actor=actor,
            )
            invoice.amount, invoice.currency = sub.amount, sub.currency
        invoice.next_attempt_at = now
        invoice.updated_at = now
        retried.append(invoice.id)
    if sub.next_charge_at is not None and sub.next_charge_at <= now:
        sub.next_charge_at = next_due(sub.schedule, sub.timezone, now)
    sub.cancel_at = None
    change_status(session, sub, SubscriptionStatus.ACTIVE, now, reason, actor=actor)
    return retried


def _has_attempt(session: Session, invoice_id: int, states: set[str]) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    ChargeAttempt.invoice_id == invoice_id, ChargeAttempt.state.in_(states)
                )
            )
        )
    )
