"""Recording a payment: an attempt whose order is DEPOSITED pays its invoice.

It decides what a payment does to the invoice (paid) and the subscription (recovered from
dunning, its next invoice released), and that a second payment of one invoice is a double
charge to refund. It must never call the gateway nor decide that an order is paid: the
caller has read DEPOSITED from the order status before calling it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from billing.domain.model import InvoiceStatus, SubscriptionStatus
from billing.observability.metrics import DOUBLE_CHARGES
from billing.services.audit import record_event
from billing.services.collection import release_next
from billing.services.lifecycle import recover
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.charging")

#: Statuses a paid invoice brings back to active (a payment proves the card works).
RECOVERING = (
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.NEEDS_PAYMENT_METHOD,
    SubscriptionStatus.SUSPENDED,
    SubscriptionStatus.HELD,  # an operator's manual retry went through with the fixed data
)


def mark_paid(
    session: Session,
    invoice: Invoice,
    subscription: Subscription,
    attempt: ChargeAttempt,
    now: datetime,
) -> None:
    """Record that ``attempt`` took the money: the invoice is paid and the subscription
    recovers and releases its next invoice, unless the invoice was already paid or void,
    when the attempt is a double charge flagged for a refund (loudly: event, log, metric)."""
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        attempt.needs_refund = True
        message = (
            f"DOUBLE CHARGE: attempt {attempt.id} (order {attempt.order_number}) took money "
            f"for invoice {invoice.id}, which is already {invoice.status}; refund it"
        )
        record_event(
            session,
            now,
            "double_charge",
            message,
            subscription_id=subscription.id,
            invoice_id=invoice.id,
            attempt_id=attempt.id,
        )
        log.error(message)
        DOUBLE_CHARGES.inc()
        return
    record_event(
        session,
        now,
        "invoice_paid",
        f"paid by order {attempt.order_number}",
        subscription_id=subscription.id,
        invoice_id=invoice.id,
        attempt_id=attempt.id,
        from_state=invoice.status,
        to_state="paid",
    )
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = invoice.closed_at = invoice.updated_at = now
    invoice.next_attempt_at = None
    recover(
        session,
        subscription,
        now,
        "open invoice paid; dunning reset",
        statuses=RECOVERING,
        invoice_id=invoice.id,
    )
    release_next(session, subscription, now, f"invoice {invoice.id} paid")
