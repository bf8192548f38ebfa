"""Read models for operators: the dashboard, the failing list and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.model import InvoiceStatus, SubscriptionStatus
from billing.gateway.classify_action import RefundState
from billing.services.read.status import account_states
from billing.storage.circuit_row import load_circuit
from billing.storage.database import Database
from billing.storage.tables import Event, Invoice, Refund, Subscription

FAILING = [
    SubscriptionStatus.PAST_DUE.value,
    SubscriptionStatus.NEEDS_PAYMENT_METHOD.value,
    SubscriptionStatus.SUSPENDED.value,
    SubscriptionStatus.HELD.value,
]


def dashboard(db: Database, now: datetime, *, timezone: str = "UTC") -> dict[str, Any]:
    """Counts by status, revenue today and this month (in ``timezone``), failure reasons
    of open invoices, and what falls due in the next hour."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    hour_ahead = now + timedelta(hours=1)
    with db.transaction() as session:
        by_status = dict(
            session.execute(
                select(Subscription.status, func.count()).group_by(Subscription.status)
            ).all()
        )
        revenue_today = _revenue(session, day_start)
        revenue_month = _revenue(session, month_start)
        reasons = session.execute(
            select(Invoice.last_reason, func.count())
            .where(Invoice.status == InvoiceStatus.OPEN, Invoice.last_reason.is_not(None))
            .group_by(Invoice.last_reason)
            .order_by(func.count().desc())
        ).all()
        due_subscriptions = session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(
                Subscription.status.in_(
                    [SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value]
                ),
                Subscription.next_charge_at <= hour_ahead,
            )
        )
        due_retries = session.scalar(
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at <= hour_ahead)
        )
        circuit = load_circuit(session)
        accounts = account_states(session, now)
    paused = [a for a in accounts if a["state"] != "running"]
    return {
        "merchant_accounts": accounts,
        "subscriptions_by_status": by_status,
        "revenue_today": revenue_today,
        "revenue_month": revenue_month,
        "failure_reasons": [{"reason": r, "count": c} for r, c in reasons],
        "due_next_hour": {"charges": due_subscriptions or 0, "retries": due_retries or 0},
        "charging": "running" if not paused else "paused",
        "charging_reason": "; ".join(f"{a['name']}: {a['reason']}" for a in paused)
        if len(accounts) > 1
        else circuit.reason,
        "timezone": timezone,
    }


def _revenue(session: Session, since: datetime) -> dict[str, int]:
    """Money kept since ``since``: paid invoices minus refunds and reversals that
    succeeded since then (a refund of an older payment lowers this period's revenue)."""
    paid = session.execute(
        select(Invoice.currency, func.coalesce(func.sum(Invoice.amount), 0))
        .where(Invoice.status == InvoiceStatus.PAID, Invoice.paid_at >= since)
        .group_by(Invoice.currency)
    ).all()
    returned = session.execute(
        select(Refund.currency, func.coalesce(func.sum(Refund.amount), 0))
        .where(
            Refund.state == RefundState.SUCCEEDED.value,
            func.coalesce(Refund.finished_at, Refund.created_at) >= since,
        )
        .group_by(Refund.currency)
    ).all()
    net = {currency: int(total) for currency, total in paid}
    for currency, total in returned:
        net[currency] = net.get(currency, 0) - int(total)
    return net


def failing_subscriptions(
    db: Database, *, limit: int = 200, offset: int = 0
) -> list[dict[str, Any]]:
    """Subscriptions in dunning with their oldest open invoice's last failure (a page)."""
    with db.transaction() as session:
        rows = session.execute(
            select(Subscription, Invoice)
            .join(Invoice, Invoice.subscription_id == Subscription.id)
            .where(Subscription.status.in_(FAILING), Invoice.status == InvoiceStatus.OPEN)
            .order_by(Invoice.failing_since.nulls_last(), Subscription.id, Invoice.id)
            .limit(limit)
            .offset(offset)
        ).all()
    seen: set[int] = set()
    result = []
    for sub, invoice in rows:
        if sub.id in seen:
            continue
        seen.add(sub.id)
        result.append(
            {
                "id": sub.id,
                "customer_id": sub.customer_id,
                "status": sub.status,
                "amount": invoice.amount,
                "currency": invoice.currency,
                "invoice_id": invoice.id,
                "last_reason": invoice.last_reason,
                "failing_since": invoice.failing_since,
                "next_attempt_at": invoice.next_attempt_at,
            }
        )
    return result


def audit_log(
    db: Database, *, limit: int = 200, offset: int = 0, people_only: bool = False
) -> list[dict[str, Any]]:
    """The newest events, a page at a time; ``people_only`` hides what the scheduler and
    workers did."""
    with db.transaction() as session:
        query = select(Event).order_by(Event.id.desc()).limit(limit).offset(offset)
        if people_only:
            query = query.where(Event.actor.not_in(["system", "scheduler", "gateway"]))
        return [
            {
                "at": e.at,
                "actor": e.actor,
                "kind": e.kind,
                "subscription_id": e.subscription_id,
                "invoice_id": e.invoice_id,
                "from": e.from_state,
                "to": e.to_state,
                "reason": e.reason,
            }
            for e in session.scalars(query)
        ]
