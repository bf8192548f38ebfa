"""A subscription's dunning timeline in words, for operators and the console.

``describe_timeline`` reads the subscription, its open invoices and their attempts, its
events and the charging circuit, and returns short lines such as::

    insufficient funds on 3 Dec; next retry 6 Dec 09:00 MSK; suspends on 10 Dec

Times are shown in the subscription's own timezone. The suspension date comes from the
dunning policy's planned schedule (:func:`billing.domain.dunning.describe_schedule`) counted from
the first decline; the next retry is the open invoice's ``next_attempt_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from billing.domain.circuit_breaker import Circuit
from billing.domain.dunning import describe_schedule
from billing.domain.dunning_policy import DunningPolicy
from billing.domain.model import (
    IN_FLIGHT_STATES,
    AttemptState,
    Category,
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.domain.periods import validate_timezone
from billing.errors import NotFoundError
from billing.storage.circuit_row import load_circuit
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Event, Invoice, Subscription


def day(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """``3 Dec`` (with the year when it is not this year's)."""
    local = moment.astimezone(zone)
    text = f"{local.day} {local:%b}"
    return text if local.year == now.astimezone(zone).year else f"{text} {local.year}"


def moment_text(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """``6 Dec 09:00 MSK``."""
    local = moment.astimezone(zone)
    return f"{day(moment, zone, now)} {local:%H:%M} {local:%Z}".rstrip()


def words(slug: str | None) -> str:
    return (slug or "unknown reason").replace("_", " ")


def describe_timeline(
    db: Database,
    subscription_id: int,
    now: datetime,
    policy: DunningPolicy,
    *,
    zone: str | None = None,
) -> list[str]:
    """The timeline lines of one subscription (see the module docstring); times in
    ``zone`` when given (the console's one display zone), else the subscription's own."""
    with db.transaction() as session:
        sub = session.get(Subscription, subscription_id)
        if sub is None:
            raise NotFoundError(f"subscription {subscription_id} does not exist")
        invoices = session.scalars(
            select(Invoice)
            .where(Invoice.subscription_id == sub.id, Invoice.status == InvoiceStatus.OPEN)
            .order_by(Invoice.period_start)
        ).all()
        attempts = session.scalars(
            select(ChargeAttempt)
            .where(ChargeAttempt.invoice_id.in_([i.id for i in invoices]))
            .order_by(ChargeAttempt.id)
        ).all()
        last_status = session.scalars(
            select(Event)
            .where(Event.subscription_id == sub.id, Event.kind == "subscription_status")
            .order_by(Event.id.desc())
            .limit(1)
        ).first()
        circuit = load_circuit(session)
        return build_timeline(
            sub,
            list(invoices),
            list(attempts),
            last_status,
            circuit,
            now,
            policy,
            display_zone=zone,
        )


def build_timeline(
    sub: Subscription,
    open_invoices: Sequence[Invoice],
    attempts: Sequence[ChargeAttempt],
    last_status: Event | None,
    circuit: Circuit,
    now: datetime,
    policy: DunningPolicy,
    *,
    display_zone: str | None = None,
) -> list[str]:
    """The lines, from already loaded rows, times in ``display_zone`` (default: the
    subscription's). Pure."""
    zone = validate_timezone(display_zone or sub.timezone)
    lines: list[str] = []
    status = SubscriptionStatus(sub.status)
    since = ""
    if last_status is not None and last_status.to_state == status.value:
        since = f" since {moment_text(last_status.at, zone, now)}"
    if status is SubscriptionStatus.CANCELED:
        why = f": {last_status.reason}" if last_status is not None and since else ""
        lines.append(f"canceled{since}{why}")
        return lines
    if status is SubscriptionStatus.PAUSED:
        who = ""
        if last_status is not None and since:
            who = f" by {last_status.actor}: {last_status.reason}"
        was = f" (was {sub.paused_from})" if sub.paused_from else ""
        lines.append(f"paused{since}{who}{was}; no invoices and no charges until resumed")
    elif status is SubscriptionStatus.SUSPENDED:
        end = f"; canceled on {day(sub.cancel_at, zone, now)}" if sub.cancel_at else ""
        lines.append(f"suspended{since}{end} unless paid or a new card is set")
    elif status is SubscriptionStatus.NEEDS_PAYMENT_METHOD:
        end = f"; canceled on {day(sub.cancel_at, zone, now)}" if sub.cancel_at else ""
        lines.append(f"waiting for a new card{since}{end} unless one is set")
    elif status is SubscriptionStatus.HELD:
        why = f": {last_status.reason}" if last_status is not None and since else ""
        lines.append(f"held for an operator{since}{why}")
    if sub.ends_at is not None:
        lines.append(f"cancels at the end of the period, {moment_text(sub.ends_at, zone, now)}")
    elif sub.next_charge_at is not None and status is not SubscriptionStatus.PAUSED:
        lines.append(
            f"next billing period {moment_text(sub.next_charge_at, zone, now)} "
            f"({sub.amount} {sub.currency})"
        )

    several = len(open_invoices) > 1
    for invoice in open_invoices:
        own = [a for a in attempts if a.invoice_id == invoice.id]
        prefix = f"invoice {invoice.id}: " if several else ""
        lines.append(prefix + _invoice_line(sub, status, invoice, own, zone, now, policy))

    if not circuit.allows_charging(now):
        until = f" until {moment_text(circuit.retry_at, zone, now)}" if circuit.retry_at else ""
        lines.append(f"charging is paused for everyone{until}: {circuit.reason or 'no reason'}")
    return lines


def _invoice_line(
    sub: Subscription,
    status: SubscriptionStatus,
    invoice: Invoice,
    attempts: Sequence[ChargeAttempt],
    zone: ZoneInfo,
    now: datetime,
    policy: DunningPolicy,
) -> str:
    parts: list[str] = []
    in_flight = [a for a in attempts if a.state in IN_FLIGHT_STATES]
    failed = [
        a
        for a in attempts
        if a.state not in IN_FLIGHT_STATES
        and a.state != AttemptState.PAID
        and a.category is not None
    ]
    if failed:
        last = failed[-1]
        parts.append(
            f"{words(last.reason)} on {day(last.finished_at or last.updated_at, zone, now)}"
        )
    else:
        parts.append(
            f"{invoice.amount} {invoice.currency} due since {day(invoice.period_start, zone, now)}"
        )
    if in_flight:
        attempt = in_flight[0]
        started = attempt.sent_at or attempt.created_at
        parts.append(
            f"a charge is in flight since {moment_text(started, zone, now)} ({attempt.state})"
        )
    elif invoice.next_attempt_at is not None:
        label = "next retry" if failed else "charge"
        if status is SubscriptionStatus.PAUSED:
            parts.append(f"{label} when resumed")
        else:
            parts.append(f"{label} {moment_text(invoice.next_attempt_at, zone, now)}")
    elif status is SubscriptionStatus.NEEDS_PAYMENT_METHOD:
        parts.append("no retry until a new card is set")
    elif status is SubscriptionStatus.HELD:
        parts.append("no retry until an operator fixes the data and resumes it")
    elif failed:
        parts.append("no automatic retry planned")
    if (
        status is SubscriptionStatus.PAST_DUE
        and invoice.last_category == Category.SOFT_DECLINE
        and invoice.failing_since is not None
    ):
        parts.append(_end_of_dunning(policy, invoice.failing_since, zone, now))
    return "; ".join(parts)


def _end_of_dunning(
    policy: DunningPolicy, failing_since: datetime, zone: ZoneInfo, now: datetime
) -> str:
    plan = describe_schedule(policy, failing_since)
    for moment, text in plan:
        if text.startswith(("suspended", "canceled")):
            verb = "suspends" if text.startswith("suspended") else "canceled"
            if moment <= now:
                return f"{verb} after the last retry"
            return f"{verb} on {day(moment, zone, now)}"
    return "no end planned"  # pragma: no cover - describe_schedule always ends the plan
