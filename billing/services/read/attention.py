"""What needs a person, read for the console and the CLI: the "Needs attention" lists with
their counts, why "retry now" would be refused for a subscription, the charging-paused
banner, and finding a subscription by id, customer id or orderNumber.

Read only: it never changes a row and never decides about money; whether a retry would be
refused is :func:`billing.domain.retry_gate.retry_refusal`'s decision on facts read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.circuit_breaker import Circuit
from billing.domain.model import (
    IN_FLIGHT_STATES,
    AttemptState,
    Category,
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.domain.retry_gate import RetryFacts, retry_refusal
from billing.storage.circuit_row import load_circuits
from billing.storage.database import Database
from billing.storage.outbox_tables import WebhookEndpoint
from billing.storage.tables import ChargeAttempt, Invoice, Refund, Subscription

#: An invoice failing only transiently for longer than this needs a look.
LONG_TRANSIENT = timedelta(hours=24)
SECTIONS = (
    "needs_operator",
    "needs_refund",
    "held",
    "long_transient",
    "refunds_unknown",
    "disabled_webhooks",
)


def retry_refusals(session: Session, subscription_ids: Iterable[int]) -> dict[int, str | None]:
    """For each subscription: why "retry now" would be refused, or None."""
    ids = sorted(set(subscription_ids))
    if not ids:
        return {}
    circuits = load_circuits(session)
    subs = {s.id: s for s in session.scalars(select(Subscription).where(Subscription.id.in_(ids)))}
    open_invoices: dict[int, Invoice] = {}
    for invoice in session.scalars(
        select(Invoice)
        .where(Invoice.subscription_id.in_(ids), Invoice.status == InvoiceStatus.OPEN)
        .order_by(Invoice.period_start.desc())
    ):
        open_invoices[invoice.subscription_id] = invoice  # the oldest wins: it is retried
    invoice_ids = [i.id for i in open_invoices.values()]
    attempts: dict[int, list[ChargeAttempt]] = {}
    for attempt in session.scalars(
        select(ChargeAttempt)
        .where(ChargeAttempt.invoice_id.in_(invoice_ids))
        .order_by(ChargeAttempt.id)
    ):
        attempts.setdefault(attempt.invoice_id, []).append(attempt)
    result: dict[int, str | None] = {}
    for sub_id in ids:
        sub = subs.get(sub_id)
        if sub is None:
            continue
        open_invoice = open_invoices.get(sub_id)
        tried = attempts.get(open_invoice.id, []) if open_invoice else []
        finished = [a for a in tried if a.state not in IN_FLIGHT_STATES]
        last = finished[-1] if finished else None
        circuit = circuits.get(sub.merchant_account, Circuit())
        facts = RetryFacts(
            status=sub.status,
            has_open_invoice=open_invoice is not None,
            in_flight=any(a.state in IN_FLIGHT_STATES for a in tried),
            charging_paused=circuit.state != "closed",
            charging_reason=circuit.reason,
            last_category=last.category if last else None,
            last_binding_version=last.binding_version if last else None,
            binding_version=sub.binding_version,
        )
        result[sub_id] = retry_refusal(facts)
    return result


def charging_banner(db: Database) -> dict[str, Any] | None:
    """Charging paused for everyone or for some merchant accounts: whose, why, and when the
    gateway is probed next; else None."""
    with db.transaction() as session:
        circuits = load_circuits(session)
    paused = {name: c for name, c in circuits.items() if c.state != "closed"}
    if not paused:
        return None
    if set(paused) == {"default"} and len(circuits) == 1:
        whom = "everyone"
    else:
        whom = "merchant account" + ("s " if len(paused) > 1 else " ") + ", ".join(sorted(paused))
    probes = [c.retry_at for c in paused.values() if c.retry_at is not None]
    reasons = "; ".join(
        f"{name}: {c.reason}" if whom != "everyone" else str(c.reason or "")
        for name, c in sorted(paused.items())
    )
    return {"whom": whom, "reason": reasons or None, "next_probe_at": min(probes, default=None)}


def needs_attention(
    db: Database, now: datetime, *, limit: int = 50, long_transient: timedelta = LONG_TRANSIENT
) -> dict[str, Any]:
    """Each section's count and its first ``limit`` rows, oldest first."""
    with db.transaction() as session:
        queries = _section_queries(now - long_transient)
        sections: dict[str, Any] = {}
        for name in SECTIONS:
            query = queries[name]
            count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = [_row(name, *found) for found in session.execute(query.limit(limit))]
            sections[name] = {"count": int(count), "rows": rows}
        retryable = {
            row["subscription_id"]
            for name in ("long_transient", "held")
            for row in sections[name]["rows"]
        }
        refusals = retry_refusals(session, retryable)
        for name in ("long_transient", "held"):
            for row in sections[name]["rows"]:
                row["retry_refused"] = refusals.get(row["subscription_id"])
    sections["total"] = sum(sections[name]["count"] for name in SECTIONS)
    return sections


def _section_queries(transient_since: datetime) -> dict[str, Any]:
    return {
        "needs_operator": select(ChargeAttempt)
        .where(ChargeAttempt.state == AttemptState.NEEDS_OPERATOR)
        .order_by(ChargeAttempt.id),
        "needs_refund": select(ChargeAttempt)
        .where(ChargeAttempt.needs_refund.is_(True))
        .order_by(ChargeAttempt.id),
        "held": select(Subscription, _open_invoice_reason())
        .where(Subscription.status == SubscriptionStatus.HELD)
        .order_by(Subscription.id),
        "long_transient": select(Invoice, Subscription)
        .join(Subscription, Subscription.id == Invoice.subscription_id)
        .where(
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.last_category == Category.TRANSIENT,
            Invoice.failing_since <= transient_since,
        )
        .order_by(Invoice.failing_since, Invoice.id),
        "refunds_unknown": select(Refund).where(Refund.state == "unknown").order_by(Refund.id),
        "disabled_webhooks": select(WebhookEndpoint)
        .where(WebhookEndpoint.enabled.is_(False))
        .order_by(WebhookEndpoint.id),
    }


def _open_invoice_reason() -> Any:
    """The oldest open invoice's last failure reason (why the subscription is held)."""
    return (
        select(Invoice.last_reason)
        .where(Invoice.subscription_id == Subscription.id, Invoice.status == InvoiceStatus.OPEN)
        .order_by(Invoice.period_start)
        .limit(1)
        .correlate(Subscription)
        .scalar_subquery()
    )


def _row(section: str, *found: Any) -> dict[str, Any]:
    if section in {"needs_operator", "needs_refund"}:
        (a,) = found
        return {
            "attempt_id": a.id,
            "subscription_id": a.subscription_id,
            "invoice_id": a.invoice_id,
            "order_number": a.order_number,
            "amount": a.amount,
            "currency": a.currency,
            "state": a.state,
            "since": a.sent_at or a.created_at,
        }
    if section == "held":
        sub, reason = found
        return {
            "subscription_id": sub.id,
            "customer_id": sub.customer_id,
            "amount": sub.amount,
            "currency": sub.currency,
            "why": reason or "a request was refused by the gateway",
            "since": sub.updated_at,
        }
    if section == "long_transient":
        invoice, sub = found
        return {
            "subscription_id": sub.id,
            "customer_id": sub.customer_id,
            "invoice_id": invoice.id,
            "amount": invoice.amount,
            "currency": invoice.currency,
            "why": invoice.last_reason,
            "since": invoice.failing_since,
            "attempts": invoice.attempt_count,
        }
    if section == "disabled_webhooks":
        (endpoint,) = found
        return {
            "endpoint_id": endpoint.id,
            "url": endpoint.url,
            "why": endpoint.disabled_reason or "disabled by hand",
            "since": endpoint.failing_since or endpoint.updated_at,
        }
    (refund,) = found
    return {
        "refund_id": refund.id,
        "kind": refund.kind,
        "attempt_id": refund.attempt_id,
        "subscription_id": refund.subscription_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "since": refund.created_at,
    }


def find(db: Database, text: str) -> dict[str, Any]:
    """A subscription id, a customer id or an orderNumber → the subscriptions it names."""
    query = text.strip()
    if not query or "\x00" in query or len(query) > 255:
        return {"query": query, "subscription_ids": []}
    with db.transaction() as session:
        found: set[int] = set()
        as_id = int(query) if query.isascii() and query.isdigit() else 0
        if 0 < as_id < 2**63 and session.get(Subscription, as_id) is not None:
            found.add(as_id)
        found.update(
            session.scalars(select(Subscription.id).where(Subscription.customer_id == query))
        )
        found.update(
            session.scalars(
                select(ChargeAttempt.subscription_id).where(ChargeAttempt.order_number == query)
            )
        )
    return {"query": query, "subscription_ids": sorted(found)}
