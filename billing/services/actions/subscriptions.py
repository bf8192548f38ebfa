"""What people and the SaaS backend do to a subscription: create, update, set a card.

Every change takes an ``actor`` (the token name, ``cli:<login>``) and a ``reason`` and writes
its ``events`` row in the same transaction as the change: a change that fails leaves no
audit row. A create with an Idempotency-Key is done once. Pausing, resuming and canceling
are in :mod:`billing.services.actions.pausing`. This module never calls the gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.domain.contacts import mask_email, mask_phone
from billing.domain.model import (
    IN_FLIGHT_STATES,
    InvoiceStatus,
    SubscriptionStatus,
    mask_binding,
)
from billing.domain.periods import next_due, schedule_warnings
from billing.domain.subscription import (
    DEFAULT_ACCOUNT,
    NewSubscription,
    clean_binding,
    clean_contacts,
    first_charge_time,
)
from billing.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.collection import release_next
from billing.services.idempotency import (
    DEFAULT_TTL,
    Stored,
    check_key,
    claim_key,
    request_hash,
)
from billing.services.lifecycle import (
    change_status,
    lock_subscription,
)
from billing.services.period_invoices import change_schedule
from billing.services.ports import Clock, system_clock
from billing.services.read.views import (
    iso,
    subscription_summary,
)
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
    IdempotencyKey,
    Invoice,
    Subscription,
)


@dataclass(frozen=True)
class SubscriptionActions:
    """Create, update and set a new card on subscriptions."""

    db: Database
    clock: Clock = system_clock
    idempotency_ttl: timedelta = DEFAULT_TTL
    #: The configured merchant account names; a subscription names one of them.
    merchant_accounts: frozenset[str] = frozenset({DEFAULT_ACCOUNT})

    def create(
        self,
        new: NewSubscription,
        *,
        actor: str,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Stored:
        """Create a subscription. The same Idempotency-Key and body return the first answer."""
        actor, reason, key = clean_actor(actor), clean_reason(reason), check_key(idempotency_key)
        clean = new.validated()
        if clean.merchant_account not in self.merchant_accounts:
            names = ", ".join(sorted(self.merchant_accounts))
            raise ValidationError(
                f"merchant_account {clean.merchant_account!r} is not configured; use one of {names}"
            )
        now = self.clock()
        next_charge = first_charge_time(clean, now)
        payload = {
            "merchant_account": clean.merchant_account,
            "customer_email": clean.customer_email,
            "customer_phone": clean.customer_phone,
            "customer_id": clean.customer_id,
            "binding_id": clean.binding_id,
            "amount": clean.amount,
            "currency": clean.currency,
            "schedule": clean.schedule,
            "timezone": clean.timezone,
            "description": clean.description,
            "start_at": iso(clean.start_at),
            "reason": reason,
        }
        digest = request_hash("create_subscription", payload)
        for round_ in range(2):
            try:
                with self.db.transaction() as session:
                    if key is not None:
                        earlier = claim_key(
                            session,
                            key,
                            "create_subscription",
                            digest,
                            principal=actor,
                            now=now,
                            ttl=self.idempotency_ttl,
                        )
                        if earlier is not None:
                            if earlier.response is None:
                                raise ConflictError(
                                    "a request with this Idempotency-Key is still being "
                                    "processed; retry shortly"
                                )
                            return Stored(json.loads(earlier.response), replayed=True)
                    sub = insert_subscription(session, clean, next_charge, now, actor, note=reason)
                    body = subscription_summary(sub) | {"warnings": schedule_warnings(sub.schedule)}
                    if key is not None:
                        session.add(
                            IdempotencyKey(
                                principal=actor,
                                key=key,
                                endpoint="create_subscription",
                                request_hash=digest,
                                response=json.dumps(body),
                                created_at=now,
                                completed_at=now,
                            )
                        )
                        session.flush()
                    return Stored(body)
            except IntegrityError:
                # The same key committed by a concurrent request: read its answer.
                if round_ or key is None:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def update(
        self,
        subscription_id: int,
        *,
        actor: str,
        reason: str,
        amount: int | None = None,
        schedule: str | None = None,
        timezone: str | None = None,
        description: str | None = None,
        currency: str | None = None,
        customer_email: str | None = None,
        customer_phone: str | None = None,
    ) -> dict[str, Any]:
        """Change the price, schedule, timezone, description (``""`` clears it), currency,
        or the customer's email or phone for fiscal receipts (``""`` clears them).

        A new amount applies to invoices opened from now on. A new schedule or timezone
        starts where the current period ends; a period already due is still invoiced
        (billing.services.period_invoices.change_schedule).
        """
        actor, reason = clean_actor(actor), clean_reason(reason)
        changed = (
            amount,
            schedule,
            timezone,
            description,
            currency,
            customer_email,
            customer_phone,
        )
        if all(v is None for v in changed):
            raise ValidationError(
                "nothing to change: give amount, schedule, timezone, description, currency, "
                "customer_email or customer_phone"
            )
        email, phone = clean_contacts(customer_email, customer_phone)
        now = self.clock()
        with self.db.transaction() as session:
            sub = lock_subscription(session, subscription_id)
            if sub.status == SubscriptionStatus.CANCELED:
                raise ConflictError(f"subscription {subscription_id} is canceled")
            merged = NewSubscription(
                customer_id=sub.customer_id,
                binding_id=sub.binding_id,
                amount=sub.amount if amount is None else amount,
                schedule=sub.schedule if schedule is None else schedule,
                currency=sub.currency if currency is None else currency.strip(),
                timezone=sub.timezone if timezone is None else timezone,
                description=sub.description if description is None else (description or None),
            ).validated()
            changes = _apply_update(
                session, sub, merged, now, (email, phone), (customer_email, customer_phone)
            )
            if not changes:
                raise ValidationError("nothing to change: the values given are the current ones")
            sub.updated_at = now
            record_event(
                session,
                now,
                "subscription_updated",
                f"{reason} ({'; '.join(changes)})",
                subscription_id=sub.id,
                actor=actor,
            )
            return subscription_summary(sub) | {"warnings": schedule_warnings(merged.schedule)}

    def set_binding(
        self, subscription_id: int, binding_id: str, *, actor: str, reason: str
    ) -> dict[str, Any]:
        """A new card: dunning restarts for this binding, and the oldest open invoice of a
        subscription in dunning (past_due, suspended, needs_payment_method) is retried now."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        binding = clean_binding(binding_id)
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
            record_event(
                session,
                now,
                "operator_reason",
                f"set binding: {reason}",
                subscription_id=sub.id,
                actor=actor,
            )
            if sub.status in WAITING_FOR_CARD or sub.status == SubscriptionStatus.PAST_DUE:
                _retry_with_new_card(session, sub, now, actor)
            return subscription_summary(sub)


def _apply_update(
    session: Session,
    sub: Subscription,
    merged: NewSubscription,
    now: datetime,
    contacts: tuple[str | None, str | None],
    given: tuple[str | None, str | None],
) -> list[str]:
    """Write onto ``sub`` what ``merged`` and the cleaned ``contacts`` (email, phone) change,
    a contact only when ``given`` (as asked: ``""`` clears it); the changes in words, for the
    audit event (empty: nothing changed)."""
    email, phone = contacts
    customer_email, customer_phone = given
    changes: list[str] = []
    if merged.amount != sub.amount:
        changes.append(f"amount {sub.amount} → {merged.amount} from the next invoice")
        sub.amount = merged.amount
    if merged.currency != sub.currency:
        changes.append(f"currency {sub.currency} → {merged.currency} from the next invoice")
        sub.currency = merged.currency
    if merged.description != sub.description:
        changes.append("description changed")
        sub.description = merged.description
    if customer_email is not None and email != sub.customer_email:
        changes.append(f"customer email {mask_email(email) or 'cleared'}")
        sub.customer_email = email
    if customer_phone is not None and phone != sub.customer_phone:
        changes.append(f"customer phone {mask_phone(phone) or 'cleared'}")
        sub.customer_phone = phone
    if merged.schedule != sub.schedule or merged.timezone != sub.timezone:
        if merged.schedule != sub.schedule:
            changes.append(f"schedule '{sub.schedule}' → '{merged.schedule}'")
        if merged.timezone != sub.timezone:
            changes.append(f"timezone {sub.timezone} → {merged.timezone}")
        changes += change_schedule(session, sub, merged.schedule, merged.timezone, now)
    return changes


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
        merchant_account=clean.merchant_account,
        customer_email=clean.customer_email,
        customer_phone=clean.customer_phone,
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
    if clean.merchant_account != DEFAULT_ACCOUNT:
        what += f"; merchant account {clean.merchant_account}"
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


WAITING_FOR_CARD = frozenset(
    {SubscriptionStatus.NEEDS_PAYMENT_METHOD.value, SubscriptionStatus.SUSPENDED.value}
)


def _retry_with_new_card(session: Session, sub: Subscription, now: datetime, actor: str) -> None:
    """A new card starts a fresh dunning run: a subscription waiting for a card is past_due
    again, and the oldest open invoice is charged now (one collection at a time; an invoice
    with a charge in flight decides for itself, see settlement)."""
    if sub.status in WAITING_FOR_CARD:
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
        ChargeAttempt.state.in_(IN_FLIGHT_STATES),
    )
    for invoice in session.scalars(
        select(Invoice)
        .where(
            Invoice.subscription_id == sub.id,
            Invoice.status == InvoiceStatus.OPEN,
            ~in_flight,
        )
        .with_for_update()
    ):
        invoice.next_attempt_at = None  # the old card's plan is void; see release_next
        invoice.updated_at = now
    release_next(session, sub, now, "new binding set", actor=actor)
