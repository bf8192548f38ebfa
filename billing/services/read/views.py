"""How each entity looks to people and the backend: one view function per entity.

The CLI, the HTTP API and the console show these dicts. Binding ids are masked here; times
are ISO 8601 in UTC. Nothing here queries or writes: the caller loads the rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.domain.contacts import mask_email, mask_phone
from billing.domain.model import mask_binding
from billing.storage.tables import ChargeAttempt, Event, Invoice, Refund, Subscription


def iso(value: datetime | None) -> str | None:
    """A time as ISO 8601 (or None)."""
    return value.isoformat() if value is not None else None


def subscription_view(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "customer_id": sub.customer_id,
        "binding": mask_binding(sub.binding_id),
        "merchant_account": sub.merchant_account,
        "customer_email": mask_email(sub.customer_email),
        "customer_phone": mask_phone(sub.customer_phone),
        "amount": sub.amount,
        "currency": sub.currency,
        "description": sub.description,
        "schedule": sub.schedule,
        "timezone": sub.timezone,
        "status": sub.status,
        "next_charge_at": iso(sub.next_charge_at),
        "cancel_at": iso(sub.cancel_at),
        "created_at": iso(sub.created_at),
    }


def invoice_view(invoice: Invoice, attempts: list[ChargeAttempt]) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "period_start": iso(invoice.period_start),
        "amount": invoice.amount,
        "currency": invoice.currency,
        "status": invoice.status,
        "next_attempt_at": iso(invoice.next_attempt_at),
        "last_failure": invoice.last_reason,
        "paid_at": iso(invoice.paid_at),
        "attempts": [
            {
                "id": a.id,
                "number": a.attempt_number,
                "order_number": a.order_number,
                "trigger": a.trigger,
                "state": a.state,
                "category": a.category,
                "reason": a.reason,
                "error_code": a.error_code,
                "action_code": a.action_code,
                "gateway_order_id": a.gateway_order_id,
                "message": a.message,
                "needs_refund": a.needs_refund,
                "created_at": iso(a.created_at),
                "finished_at": iso(a.finished_at),
            }
            for a in attempts
        ],
    }


def subscription_summary(sub: Subscription) -> dict[str, Any]:
    return subscription_view(sub) | {
        "paused_from": sub.paused_from,
        "paused_at": iso(sub.paused_at),
        "ends_at": iso(sub.ends_at),
    }


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "subscription_id": invoice.subscription_id,
        "period_start": iso(invoice.period_start),
        "amount": invoice.amount,
        "currency": invoice.currency,
        "status": invoice.status,
        "next_attempt_at": iso(invoice.next_attempt_at),
        "attempt_count": invoice.attempt_count,
        "last_category": invoice.last_category,
        "last_failure": invoice.last_reason,
        "failing_since": iso(invoice.failing_since),
        "paid_at": iso(invoice.paid_at),
        "closed_at": iso(invoice.closed_at),
    }


def refund_view(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "kind": refund.kind,
        "attempt_id": refund.attempt_id,
        "invoice_id": refund.invoice_id,
        "subscription_id": refund.subscription_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "external_refund_id": refund.external_refund_id,
        "state": refund.state,
        "error_code": refund.error_code,
        "message": refund.error_message,
        "actor": refund.actor,
        "reason": refund.reason,
        "created_at": iso(refund.created_at),
        "finished_at": iso(refund.finished_at),
    }


def event_view(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at),
        "kind": event.kind,
        "subscription_id": event.subscription_id,
        "invoice_id": event.invoice_id,
        "attempt_id": event.attempt_id,
        "from": event.from_state,
        "to": event.to_state,
        "reason": event.reason,
        "actor": event.actor,
    }
