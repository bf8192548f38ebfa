"""Applying the collection order (billing.domain.collection) to stored invoices.

:func:`release_next` charges the oldest waiting invoice of a subscription now when nothing
else of it is being collected; callers run it after anything that can end a collection
(a payment, a recovery, a closed invoice, a new card). :func:`stranded_invoices` lists open
invoices with no next step at all: it must find none. Nothing here commits or calls the
gateway, and nothing here plans a second charge for an invoice that has one in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.collection import NextStep, OpenInvoiceFacts, next_step, to_collect
from billing.domain.model import IN_FLIGHT_STATES, AttemptState, InvoiceStatus, SubscriptionStatus
from billing.services.audit import record_event
from billing.storage.tables import ChargeAttempt, Invoice, Subscription


def invoice_facts(session: Session, invoices: Iterable[Invoice]) -> list[OpenInvoiceFacts]:
    """The facts :func:`next_step` needs for ``invoices`` (one query for their attempts)."""
    rows = list(invoices)
    ids = [invoice.id for invoice in rows]
    in_flight: set[int] = set()
    last_state: dict[int, str] = {}
    if ids:
        for invoice_id, state in session.execute(
            select(ChargeAttempt.invoice_id, ChargeAttempt.state)
            .where(ChargeAttempt.invoice_id.in_(ids))
            .order_by(ChargeAttempt.invoice_id, ChargeAttempt.attempt_number)
        ):
            last_state[invoice_id] = state
            if AttemptState(state) in IN_FLIGHT_STATES:
                in_flight.add(invoice_id)
    return [
        OpenInvoiceFacts(
            id=invoice.id,
            status=InvoiceStatus(invoice.status),
            period_start=invoice.period_start,
            next_attempt_at=invoice.next_attempt_at,
            in_flight=invoice.id in in_flight,
            needs_operator=last_state.get(invoice.id) == AttemptState.NEEDS_OPERATOR.value,
        )
        for invoice in rows
    ]


def _open_invoices(session: Session, subscription_id: int) -> list[Invoice]:
    return list(
        session.scalars(
            select(Invoice)
            .where(Invoice.subscription_id == subscription_id, Invoice.status == InvoiceStatus.OPEN)
            .order_by(Invoice.period_start, Invoice.id)
        )
    )


def release_next(
    session: Session, sub: Subscription, now: datetime, reason: str, *, actor: str = "system"
) -> int | None:
    """Plan the oldest waiting open invoice of ``sub`` (locked by the caller) for ``now``
    when the subscription is charged automatically and no older invoice is being collected.
    Returns the invoice planned, if any."""
    invoices = _open_invoices(session, sub.id)
    chosen = to_collect(SubscriptionStatus(sub.status), invoice_facts(session, invoices))
    if chosen is None:
        return None
    # Only the chosen row is locked, and a row another transaction holds is skipped: that
    # transaction is settling or changing it and decides its next step (no lock-order cycle
    # with a concurrent settlement of that invoice).
    invoice = session.scalars(
        select(Invoice)
        .where(
            Invoice.id == chosen,
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.next_attempt_at.is_(None),
        )
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()
    if invoice is None:
        return None
    invoice.next_attempt_at = now
    invoice.updated_at = now
    record_event(
        session,
        now,
        "invoice_collection",
        f"{reason}: invoice {invoice.id} is charged next (oldest open first)",
        subscription_id=sub.id,
        invoice_id=invoice.id,
        actor=actor,
    )
    return invoice.id


def subscriptions_in_dunning(session: Session, subscription_ids: Iterable[int]) -> set[int]:
    """Those of ``subscription_ids`` with an open invoice that is failing or waiting: a new
    invoice of theirs waits for it (one collection at a time, oldest first)."""
    ids = list(subscription_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Invoice.subscription_id)
            .where(
                Invoice.subscription_id.in_(ids),
                Invoice.status == InvoiceStatus.OPEN,
                Invoice.failing_since.is_not(None),
            )
            .distinct()
        )
    )


def next_steps(session: Session, subscription_id: int) -> dict[int, NextStep]:
    """The next step of each open invoice of one subscription."""
    sub = session.get_one(Subscription, subscription_id)
    invoices = list(
        session.scalars(
            select(Invoice).where(
                Invoice.subscription_id == subscription_id, Invoice.status == InvoiceStatus.OPEN
            )
        )
    )
    facts = invoice_facts(session, invoices)
    status = SubscriptionStatus(sub.status)
    return {fact.id: next_step(fact, status, facts) for fact in facts}


def stranded_invoices(session: Session, limit: int = 1000) -> list[tuple[int, int]]:
    """(subscription, invoice) pairs of open invoices with no next step: must be empty."""
    subscription_ids = list(
        session.scalars(
            select(Invoice.subscription_id)
            .where(Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at.is_(None))
            .distinct()
            .order_by(Invoice.subscription_id)
            .limit(limit)
        )
    )
    found = []
    for sub_id in subscription_ids:
        for invoice_id, step in next_steps(session, sub_id).items():
            if not step.exists:
                found.append((sub_id, invoice_id))
    return found
