"""Subscription use cases: create (validated), read, set a new binding, manual retry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from billing.currencies import validate_currency
from billing.domain import (
    IN_FLIGHT_STATES,
    AttemptState,
    AttemptTrigger,
    InvoiceStatus,
    SubscriptionStatus,
    mask_binding,
)
from billing.errors import ChargingPausedError, ConflictError, NotFoundError, ValidationError
from billing.schedule import first_due, next_due, validate_cron, validate_timezone
from billing.services.lifecycle import change_status
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.services.records import load_circuit, new_order_number, record_event
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Event, Invoice, Subscription

MAX_AMOUNT = 10**12 - 1
MAX_BACKDATE = timedelta(days=1)  # N..12 in the gateway's terms
_BINDING = re.compile(r"^[A-Za-z0-9_\-:.]{1,255}$")


@dataclass(frozen=True)
class NewSubscription:
    customer_id: str
    binding_id: str
    amount: int
    schedule: str
    currency: str = "643"
    timezone: str = "Europe/Moscow"
    description: str | None = None
    start_at: datetime | None = None

    def validated(self) -> NewSubscription:
        """Return a cleaned copy or raise ValidationError naming the first bad field."""
        customer = self.customer_id.strip()
        if not customer or len(customer) > 255:
            raise ValidationError("customer id must be 1 to 255 characters")
        binding = self.binding_id.strip()
        if not binding:
            raise ValidationError("binding id must not be empty")
        if not _BINDING.match(binding):
            raise ValidationError(
                "binding id must be at most 255 letters, digits, '-', '_', ':' or '.'"
            )
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValidationError("amount must be a whole number of minor units (e.g. 49900)")
        if not 0 < self.amount <= MAX_AMOUNT:
            raise ValidationError(f"amount must be between 1 and {MAX_AMOUNT} minor units")
        validate_currency(self.currency)
        if self.description is not None and len(self.description) > 512:
            raise ValidationError("description must be at most 512 characters")
        schedule = validate_cron(self.schedule)
        validate_timezone(self.timezone)
        return NewSubscription(
            customer_id=customer,
            binding_id=binding,
            amount=self.amount,
            schedule=schedule,
            currency=self.currency,
            timezone=self.timezone,
            description=self.description,
            start_at=self.start_at,
        )


def first_charge_time(clean: NewSubscription, now: datetime) -> datetime:
    """When a validated new subscription is first charged; a start far in the past is
    refused (past periods are not billed retroactively)."""
    next_charge = first_due(clean.schedule, clean.timezone, now, clean.start_at)
    if next_charge < now - MAX_BACKDATE:
        raise ValidationError(
            "start_at (--start-at) is more than a day in the past; past periods are not billed "
            "retroactively (omit it to start at the next scheduled time)"
        )
    return next_charge


def insert_subscription(
    session: Session,
    clean: NewSubscription,
    next_charge: datetime,
    now: datetime,
    actor: str,
    *,
    note: str | None = None,
) -> Subscription:
    """Add a validated subscription and its ``subscription_created`` event."""
    sub = Subscription(
        customer_id=clean.customer_id,
        binding_id=clean.binding_id,
        binding_version=1,
        amount=clean.amount,
        currency=clean.currency,
        description=clean.description,
        schedule=clean.schedule,
        timezone=clean.timezone,
        status=SubscriptionStatus.ACTIVE.value,
        next_charge_at=next_charge,
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    session.flush()
    what = (
        f"{clean.amount} ({clean.currency}) on '{clean.schedule}' {clean.timezone}; "
        f"first charge {next_charge:%Y-%m-%d %H:%M} UTC"
    )
    record_event(
        session,
        now,
        "subscription_created",
        f"{note} ({what})" if note else what,
        subscription_id=sub.id,
        to_state="active",
        actor=actor,
    )
    return sub


def parse_amount(text: str) -> int:
    """An amount typed by a person: digits only, minor units."""
    cleaned = text.strip()
    if not re.fullmatch(r"[+-]?\d+", cleaned):
        raise ValidationError(
            f"amount {text!r} must be a whole number of minor units (49900 = 499.00 RUB)"
        )
    return int(cleaned)


class Subscriptions:
    def __init__(self, db: Database, *, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock

    def create(self, new: NewSubscription, *, actor: str = "cli") -> dict[str, Any]:
        clean = new.validated()
        now = self.clock()
        next_charge = first_charge_time(clean, now)
        with self.db.transaction() as session:
            return subscription_view(insert_subscription(session, clean, next_charge, now, actor))

    def list(self, status: str | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        if status is not None and status not in {s.value for s in SubscriptionStatus}:
            choices = ", ".join(s.value for s in SubscriptionStatus)
            raise ValidationError(f"unknown status {status!r}; choose one of {choices}")
        with self.db.transaction() as session:
            query = select(Subscription).order_by(Subscription.id).limit(limit)
            if status:
                query = query.where(Subscription.status == status)
            return [subscription_view(s) for s in session.scalars(query)]

    def show(self, subscription_id: int) -> dict[str, Any]:
        with self.db.transaction() as session:
            sub = session.get(Subscription, subscription_id)
            if sub is None:
                raise NotFoundError(f"subscription {subscription_id} does not exist")
            view = subscription_view(sub)
            invoices = session.scalars(
                select(Invoice).where(Invoice.subscription_id == sub.id).order_by(Invoice.id)
            ).all()
            attempts = session.scalars(
                select(ChargeAttempt)
                .where(ChargeAttempt.subscription_id == sub.id)
                .order_by(ChargeAttempt.id)
            ).all()
            events = session.scalars(
                select(Event).where(Event.subscription_id == sub.id).order_by(Event.id)
            ).all()
            view["invoices"] = [
                invoice_view(i, [a for a in attempts if a.invoice_id == i.id]) for i in invoices
            ]
            view["events"] = [
                {
                    "at": _iso(e.at),
                    "kind": e.kind,
                    "from": e.from_state,
                    "to": e.to_state,
                    "reason": e.reason,
                    "actor": e.actor,
                }
                for e in events
            ]
            return view

    def set_binding(
        self, subscription_id: int, binding_id: str, *, actor: str = "cli"
    ) -> dict[str, Any]:
        """A new card: dunning restarts for this binding, and a waiting invoice is retried now."""
        binding = binding_id.strip()
        if not binding or not _BINDING.match(binding):
            raise ValidationError(
                "binding id must be 1 to 255 letters, digits, '-', '_', ':' or '.'"
            )
        now = self.clock()
        with self.db.transaction() as session:
            sub = session.get(Subscription, subscription_id, with_for_update=True)
            if sub is None:
                raise NotFoundError(f"subscription {subscription_id} does not exist")
            if sub.status == SubscriptionStatus.CANCELED:
                raise ConflictError(f"subscription {subscription_id} is canceled")
            sub.binding_id = binding
            sub.binding_version += 1
            sub.updated_at = now
            record_event(
                session,
                now,
                "binding_changed",
                f"new binding {mask_binding(binding)}",
                subscription_id=sub.id,
                actor=actor,
            )
            waiting = {
                SubscriptionStatus.NEEDS_PAYMENT_METHOD.value,
                SubscriptionStatus.SUSPENDED.value,
            }
            if sub.status in waiting:
                if sub.status == SubscriptionStatus.SUSPENDED and (
                    sub.next_charge_at is not None and sub.next_charge_at <= now
                ):
                    # Periods that passed while suspended are not billed retroactively.
                    sub.next_charge_at = next_due(sub.schedule, sub.timezone, now)
                change_status(
                    session,
                    sub,
                    SubscriptionStatus.PAST_DUE,
                    now,
                    "new binding set: retrying the open invoice now",
                    actor=actor,
                )
                sub.cancel_at = None
                in_flight = exists().where(
                    ChargeAttempt.invoice_id == Invoice.id,
                    ChargeAttempt.state.in_([s.value for s in IN_FLIGHT_STATES]),
                )
                for invoice in session.scalars(
                    select(Invoice)
                    .where(
                        Invoice.subscription_id == sub.id,
                        Invoice.status == InvoiceStatus.OPEN,
                        ~in_flight,  # a charge in flight decides for itself (see _settle)
                    )
                    .with_for_update()
                ):
                    invoice.next_attempt_at = now
                    invoice.updated_at = now
            return subscription_view(sub)

    def retry_now(
        self, subscription_id: int, dispatcher: Dispatcher, *, actor: str = "operator"
    ) -> dict[str, Any]:
        """An operator's manual retry of the oldest open invoice, now.

        Refused when nothing is open, an attempt is in flight, or charging is paused.
        It does not use up a dunning step.
        """
        now = self.clock()
        with self.db.transaction() as session:
            sub = session.get(Subscription, subscription_id)
            if sub is None:
                raise NotFoundError(f"subscription {subscription_id} does not exist")
            if sub.status == SubscriptionStatus.CANCELED:
                raise ConflictError(f"subscription {subscription_id} is canceled")
            circuit = load_circuit(session)
            if not circuit.allows_charging(now):
                raise ChargingPausedError(
                    f"charging is paused for everyone until {circuit.retry_at}: {circuit.reason}"
                )
            invoice = session.scalars(
                select(Invoice)
                .where(Invoice.subscription_id == sub.id, Invoice.status == InvoiceStatus.OPEN)
                .order_by(Invoice.period_start)
                .limit(1)
                .with_for_update()
            ).first()
            if invoice is None:
                raise ConflictError(f"subscription {subscription_id} has no open invoice to retry")
            busy = session.scalar(
                select(
                    exists().where(
                        ChargeAttempt.invoice_id == invoice.id,
                        ChargeAttempt.state.in_([s.value for s in IN_FLIGHT_STATES]),
                    )
                )
            )
            if busy:
                raise ConflictError(f"invoice {invoice.id} already has a charge in flight")
            number = invoice.attempt_count + 1
            invoice.attempt_count = number
            invoice.next_attempt_at = None  # this attempt's outcome decides what comes next
            invoice.updated_at = now
            attempt = ChargeAttempt(
                invoice_id=invoice.id,
                subscription_id=sub.id,
                attempt_number=number,
                order_number=new_order_number(invoice.id, number),
                trigger=AttemptTrigger.MANUAL.value,
                state=AttemptState.PENDING.value,
                binding_version=sub.binding_version,
                amount=invoice.amount,
                currency=invoice.currency,
                status_checks=0,
                needs_refund=False,
                created_at=now,
                updated_at=now,
            )
            session.add(attempt)
            session.flush()
            record_event(
                session,
                now,
                "manual_retry",
                "operator asked to retry now",
                subscription_id=sub.id,
                invoice_id=invoice.id,
                attempt_id=attempt.id,
                actor=actor,
            )
            attempt_id = attempt.id
            result = {
                "subscription_id": sub.id,
                "invoice_id": invoice.id,
                "attempt_id": attempt_id,
                "order_number": attempt.order_number,
            }
        dispatcher.charge([attempt_id])
        return result


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def subscription_view(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "customer_id": sub.customer_id,
        "binding": mask_binding(sub.binding_id),
        "amount": sub.amount,
        "currency": sub.currency,
        "description": sub.description,
        "schedule": sub.schedule,
        "timezone": sub.timezone,
        "status": sub.status,
        "next_charge_at": _iso(sub.next_charge_at),
        "cancel_at": _iso(sub.cancel_at),
        "created_at": _iso(sub.created_at),
    }


def invoice_view(invoice: Invoice, attempts: list[ChargeAttempt]) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "period_start": _iso(invoice.period_start),
        "amount": invoice.amount,
        "currency": invoice.currency,
        "status": invoice.status,
        "next_attempt_at": _iso(invoice.next_attempt_at),
        "last_failure": invoice.last_reason,
        "paid_at": _iso(invoice.paid_at),
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
                "created_at": _iso(a.created_at),
                "finished_at": _iso(a.finished_at),
            }
            for a in attempts
        ],
    }
