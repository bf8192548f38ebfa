"""A subscription's and an invoice's state changes, each written with its reason.

Every status change goes through :func:`change_status` (one event per change), recovery from
dunning through :func:`recover` (which then charges the oldest waiting invoice); the helpers
below lock rows, hold attempts that were never sent, and close invoices, always on the
caller's session. Nothing here commits or calls the gateway.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from billing.domain.model import (
    IN_FLIGHT_STATES,
    SENT_STATES,
    AttemptState,
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.domain.periods import next_due
from billing.errors import NotFoundError
from billing.services.audit import record_event
from billing.services.collection import release_next
from billing.storage.tables import ChargeAttempt, Event, Invoice, Subscription


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
    # Invoices that waited (opened while in dunning or waiting for a card) are collected
    # now, oldest first.
    release_next(session, sub, now, "recovered", actor=actor)
    return True


def lock_subscription(session: Session, subscription_id: int) -> Subscription:
    sub = session.get(Subscription, subscription_id, with_for_update=True, populate_existing=True)
    if sub is None:
        raise NotFoundError(f"subscription {subscription_id} does not exist")
    return sub


def lock_invoice(session: Session, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if invoice is None:
        raise NotFoundError(f"invoice {invoice_id} does not exist")
    return invoice


def hold_pending(
    session: Session,
    subscription_id: int,
    invoice_id: int | None,
    now: datetime,
    why: str,
    actor: str,
) -> list[int]:
    """Fail the attempts that are stored but were never sent (``pending``), under their row
    lock: a worker that picks one up afterwards finds it final and sends nothing. Their
    invoices get ``next_attempt_at = now`` so that they are tried again when chargeable."""
    query = select(ChargeAttempt).where(
        ChargeAttempt.subscription_id == subscription_id,
        ChargeAttempt.state == AttemptState.PENDING,
    )
    if invoice_id is not None:
        query = query.where(ChargeAttempt.invoice_id == invoice_id)
    held = []
    for attempt in session.scalars(query.with_for_update()):
        attempt.state = AttemptState.FAILED.value
        attempt.reason = why[:64]
        attempt.message = f"never sent: {why.replace('_', ' ')}"
        attempt.finished_at = attempt.updated_at = now
        invoice = session.get_one(Invoice, attempt.invoice_id)
        if invoice.status == InvoiceStatus.OPEN:
            invoice.next_attempt_at = now
            invoice.updated_at = now
        record_event(
            session,
            now,
            "attempt_withdrawn",
            attempt.message,
            subscription_id=subscription_id,
            invoice_id=attempt.invoice_id,
            attempt_id=attempt.id,
            from_state=AttemptState.PENDING.value,
            to_state=AttemptState.FAILED.value,
            actor=actor,
        )
        held.append(attempt.id)
    return held


def rearm_withheld(session: Session, subscription_id: int, now: datetime) -> None:
    """An open invoice whose last attempt was refused because the subscription was paused
    (by :func:`_hold_pending`, or by a worker that found it paused) is charged again now:
    otherwise nothing would be planned for it."""
    for invoice in session.scalars(
        select(Invoice)
        .where(
            Invoice.subscription_id == subscription_id,
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.next_attempt_at.is_(None),
        )
        .with_for_update()
    ):
        last = session.scalars(
            select(ChargeAttempt)
            .where(ChargeAttempt.invoice_id == invoice.id)
            .order_by(ChargeAttempt.attempt_number.desc())
            .limit(1)
        ).first()
        if last is not None and (last.state, last.reason) == (
            AttemptState.FAILED.value,
            "subscription_paused",
        ):
            invoice.next_attempt_at = now
            invoice.updated_at = now


def sent_attempts(session: Session, subscription_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ChargeAttempt)
            .where(
                ChargeAttempt.subscription_id == subscription_id,
                ChargeAttempt.state.in_(SENT_STATES),
            )
        )
        or 0
    )


def has_in_flight(session: Session, invoice_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    ChargeAttempt.invoice_id == invoice_id,
                    ChargeAttempt.state.in_(IN_FLIGHT_STATES),
                )
            )
        )
    )


def failing_invoices(session: Session, subscription_id: int) -> list[Invoice]:
    return list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.subscription_id == subscription_id,
                Invoice.status == InvoiceStatus.OPEN,
                Invoice.failing_since.is_not(None),
            )
            .order_by(Invoice.period_start)
            .with_for_update()
        )
    )


def binding_changed_since(session: Session, subscription_id: int, since: datetime) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    Event.subscription_id == subscription_id,
                    Event.kind == "binding_changed",
                    Event.at >= since,
                )
            )
        )
    )


def close_invoice(
    session: Session,
    invoice: Invoice,
    to: InvoiceStatus,
    now: datetime,
    actor: str,
    reason: str,
) -> None:
    record_event(
        session,
        now,
        f"invoice_{to.value}",
        reason,
        subscription_id=invoice.subscription_id,
        invoice_id=invoice.id,
        from_state=invoice.status,
        to_state=to.value,
        actor=actor,
    )
    invoice.status = to.value
    invoice.next_attempt_at = None
    invoice.closed_at = invoice.updated_at = now


def recover_if_nothing_fails(
    session: Session, sub: Subscription, now: datetime, actor: str, why: str
) -> None:
    """After an invoice is closed by hand: a subscription in dunning only for it is active
    again (a card known to be bad keeps ``needs_payment_method``)."""
    recovered = recover(
        session,
        sub,
        now,
        f"{why}: nothing is failing any more; dunning reset",
        statuses=(SubscriptionStatus.PAST_DUE, SubscriptionStatus.SUSPENDED),
        actor=actor,
    )
    if not recovered:  # e.g. still active: the next invoice waiting for this one goes now
        release_next(session, sub, now, why, actor=actor)


def cancel_subscription(
    session: Session, subscription: Subscription, now: datetime, reason: str
) -> None:
    """Cancel a subscription: no new invoices; its open invoices become uncollectible."""
    for invoice in session.scalars(
        select(Invoice)
        .where(Invoice.subscription_id == subscription.id, Invoice.status == InvoiceStatus.OPEN)
        .with_for_update()
    ):
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        invoice.next_attempt_at = None
        invoice.closed_at = invoice.updated_at = now
        record_event(
            session,
            now,
            "invoice_uncollectible",
            reason,
            subscription_id=subscription.id,
            invoice_id=invoice.id,
            from_state="open",
            to_state="uncollectible",
        )
    change_status(session, subscription, SubscriptionStatus.CANCELED, now, reason)
    subscription.next_charge_at = None
    subscription.cancel_at = None
    subscription.updated_at = now
