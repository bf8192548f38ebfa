"""What operators and the SaaS backend do to subscriptions, invoices and payments.

Every change takes an ``actor`` (the token name, ``cli:<user>``) and a ``reason`` and writes
its ``events`` row(s) in the same transaction as the change: a change that fails leaves no
audit row, and an audit row always describes a change that happened. The clock is passed in.

Money rules kept here:

* a refund's ``externalRefundId`` is derived once per logical request (from its
  Idempotency-Key when there is one) and committed in ``refunds`` *before* ``refund.do`` is
  called, so a repeated click finds the first request instead of refunding twice;
* partial refunds never exceed the paid amount minus earlier refunds (those whose outcome is
  unknown count as taken until someone checks them);
* a refund or reversal whose outcome is unknown (timeout) stays ``unknown`` and says so: it is
  never reported as a success;
* an attempt that may already be at the gateway (``sending``/``unknown``) is never overridden:
  voiding or writing off its invoice is refused until it settles. An attempt still
  ``pending`` (stored, never sent) is failed under its row lock when its subscription is
  paused or canceled or its invoice closed, so no worker sends it afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.domain import (
    CHARGEABLE_STATUSES,
    IN_FLIGHT_STATES,
    AttemptState,
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.errors import (
    BrokerError,
    ChargingPausedError,
    ConflictError,
    GatewayError,
    NotFoundError,
    ValidationError,
)
from billing.failures import clean_failure_filter
from billing.gateway.models import ActionResponse
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)
from billing.policy import DunningPolicy
from billing.schedule import next_due
from billing.services.holds import release_hold
from billing.services.lifecycle import change_status, recover
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.services.records import load_circuit, record_event
from billing.services.status import system_status
from billing.services.subscriptions import (
    NewSubscription,
    Subscriptions,
    first_charge_time,
    insert_subscription,
    invoice_view,
    subscription_view,
)
from billing.services.timeline import describe_timeline
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
    Event,
    IdempotencyKey,
    Invoice,
    Refund,
    Subscription,
)

#: Actors that are the machine itself; everyone else's events form the audit log.
SYSTEM_ACTORS = ("system", "scheduler", "gateway")
MAX_REASON = 500
MAX_LIST = 1000
MAX_BULK = 10_000
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_FAILURE = re.compile(r"^[a-z0-9_]{1,64}$")
SENT_STATES = frozenset({AttemptState.SENDING.value, AttemptState.UNKNOWN.value})


class RefundState(StrEnum):
    REQUESTED = "requested"  # stored; the gateway call has not come back (yet)
    SUCCEEDED = "succeeded"  # the gateway answered errorCode 0
    FAILED = "failed"  # the gateway refused, or the request certainly never left
    UNKNOWN = "unknown"  # sent, no answer: may have been processed; never assumed either way


#: Refund states whose money may have left (or will): they count against the paid amount.
TAKEN_STATES = (RefundState.REQUESTED.value, RefundState.SUCCEEDED.value, RefundState.UNKNOWN.value)


@runtime_checkable
class RefundGateway(Protocol):
    """The part of the gateway client that gives money back."""

    def refund(self, order_id: str, amount: int, external_refund_id: str) -> GatewayResult: ...

    def reverse(self, order_id: str) -> GatewayResult: ...


def refund_gateway(gateway: object) -> RefundGateway | None:
    """The gateway itself if it can refund (the rate limiter does, through its slots),
    else the one it wraps (``.inner``)."""
    current: object = gateway
    for _ in range(5):
        if isinstance(current, RefundGateway):
            return current
        current = getattr(current, "inner", None)
        if current is None:
            return None
    return None


@dataclass(frozen=True)
class Stored:
    """A creating call's answer, and whether it was replayed for a repeated Idempotency-Key."""

    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class ActionOutcome:
    """What the answer of refund.do / reverse.do means."""

    state: RefundState
    message: str
    error_code: str | None = None
    http_status: int | None = None


def classify_action(result: GatewayResult) -> ActionOutcome:
    """errorCode "0" is accepted; an explicit other code is a refusal; a request that may
    have been processed without a clear answer (timeout, lost connection, 5xx, an HTML page,
    a JSON body without errorCode) is UNKNOWN — never a success."""
    if isinstance(result, JsonReply):
        status = result.http_status
        parsed = ActionResponse.model_validate(result.body)
        code = parsed.error_code
        message = (parsed.error_message or "").strip()[:300]
        if code is None:
            error = result.body.get("error")
            if isinstance(error, dict):
                raw = error.get("code")
                code = None if raw is None else str(raw).strip() or None
                text = error.get("message") or error.get("description") or ""
                message = message or (text if isinstance(text, str) else "")[:300]
        if code is None:
            return ActionOutcome(
                RefundState.UNKNOWN, "the gateway's answer has no errorCode", None, status
            )
        if code == "0":
            if not 200 <= status <= 299:
                return ActionOutcome(
                    RefundState.UNKNOWN, f"errorCode 0 with HTTP {status}", code, status
                )
            return ActionOutcome(RefundState.SUCCEEDED, message or "accepted", code, status)
        return ActionOutcome(RefundState.FAILED, message or f"errorCode {code}", code, status)
    if isinstance(result, ConnectionFailed | ReadTimedOut | ConnectionLost):
        if result.request_sent is False:  # the request certainly never left
            return ActionOutcome(RefundState.FAILED, f"not sent: {result.detail}"[:300])
        return ActionOutcome(
            RefundState.UNKNOWN, f"no answer (may have been processed): {result.detail}"[:300]
        )
    if isinstance(result, HttpErrorReply):
        if result.http_status >= 500:
            return ActionOutcome(
                RefundState.UNKNOWN,
                f"HTTP {result.http_status} (may have been processed behind it)",
                None,
                result.http_status,
            )
        return ActionOutcome(
            RefundState.FAILED, f"refused with HTTP {result.http_status}", None, result.http_status
        )
    if isinstance(result, NotJsonReply):
        return ActionOutcome(
            RefundState.UNKNOWN,
            f"not a JSON answer (HTTP {result.http_status}); may have been processed",
            None,
            result.http_status,
        )
    return ActionOutcome(RefundState.UNKNOWN, "unrecognised result")


# -- small helpers ------------------------------------------------------------------------------


def clean_reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise ValidationError("reason is required: say why (it is kept in the audit log)")
    if len(text) > MAX_REASON:
        raise ValidationError(f"reason must be at most {MAX_REASON} characters")
    return text


def clean_actor(actor: str) -> str:
    text = actor.strip()
    if not text:
        raise ValidationError("actor must not be empty")
    return text[:64]


def clean_failure(failure: str) -> str:
    text = failure.strip().lower()
    if not _FAILURE.match(text):
        raise ValidationError(
            "failure must be a category (e.g. soft_decline) or a reason slug "
            "(e.g. insufficient_funds): lower-case letters, digits and '_'"
        )
    return text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _request_hash(endpoint: str, payload: dict[str, Any]) -> str:
    text = json.dumps({"endpoint": endpoint, "payload": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
        )
    return key


def _claim_key(
    session: Session, key: str, endpoint: str, request_hash: str
) -> IdempotencyKey | None:
    """The earlier request with this key, or None (then the caller stores a new one)."""
    earlier = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.key == key).with_for_update()
    ).one_or_none()
    if earlier is not None and (
        earlier.endpoint != endpoint or earlier.request_hash != request_hash
    ):
        raise ConflictError(
            "this Idempotency-Key was already used for a different request; "
            "use a new key for a new request"
        )
    return earlier


def _lock_subscription(session: Session, subscription_id: int) -> Subscription:
    sub = session.get(Subscription, subscription_id, with_for_update=True, populate_existing=True)
    if sub is None:
        raise NotFoundError(f"subscription {subscription_id} does not exist")
    return sub


def _lock_invoice(session: Session, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if invoice is None:
        raise NotFoundError(f"invoice {invoice_id} does not exist")
    return invoice


def subscription_summary(sub: Subscription) -> dict[str, Any]:
    return subscription_view(sub) | {
        "paused_from": sub.paused_from,
        "paused_at": _iso(sub.paused_at),
        "ends_at": _iso(sub.ends_at),
    }


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "subscription_id": invoice.subscription_id,
        "period_start": _iso(invoice.period_start),
        "amount": invoice.amount,
        "currency": invoice.currency,
        "status": invoice.status,
        "next_attempt_at": _iso(invoice.next_attempt_at),
        "attempt_count": invoice.attempt_count,
        "last_category": invoice.last_category,
        "last_failure": invoice.last_reason,
        "failing_since": _iso(invoice.failing_since),
        "paid_at": _iso(invoice.paid_at),
        "closed_at": _iso(invoice.closed_at),
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
        "created_at": _iso(refund.created_at),
        "finished_at": _iso(refund.finished_at),
    }


def event_view(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": _iso(event.at),
        "kind": event.kind,
        "subscription_id": event.subscription_id,
        "invoice_id": event.invoice_id,
        "attempt_id": event.attempt_id,
        "from": event.from_state,
        "to": event.to_state,
        "reason": event.reason,
        "actor": event.actor,
    }


class _AuditedDatabase(Database):
    """The same database (engine and sessions shared) whose every transaction ends with
    ``before_commit(session)``: a use case of :class:`Subscriptions` is reused as is, and the
    caller's audit row is written in its transaction (not written at all if it fails)."""

    def __init__(self, db: Database, before_commit: Callable[[Session], None]) -> None:
        self.__dict__.update(db.__dict__)  # no second engine
        self._before_commit = before_commit

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with super().transaction() as session:
            yield session
            self._before_commit(session)


# -- the use cases ------------------------------------------------------------------------------


class Operations:
    """Operator and backend use cases on the database (and the gateway for refunds)."""

    def __init__(
        self,
        db: Database,
        *,
        gateway: object,
        policy: DunningPolicy,
        dispatcher: Dispatcher,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.policy = policy
        self.dispatcher = dispatcher
        self.clock = clock
        self.subscriptions = Subscriptions(db, clock=clock)

    def _audited(self, note: Callable[[Session], None]) -> Subscriptions:
        return Subscriptions(_AuditedDatabase(self.db, note), clock=self.clock)

    # -- subscriptions: create and read ---------------------------------------------------------

    def create_subscription(
        self,
        new: NewSubscription,
        *,
        actor: str,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Stored:
        """Create a subscription. The same Idempotency-Key and body return the first answer."""
        actor, reason, key = clean_actor(actor), clean_reason(reason), _check_key(idempotency_key)
        clean = new.validated()
        now = self.clock()
        next_charge = first_charge_time(clean, now)
        payload = {
            "customer_id": clean.customer_id,
            "binding_id": clean.binding_id,
            "amount": clean.amount,
            "currency": clean.currency,
            "schedule": clean.schedule,
            "timezone": clean.timezone,
            "description": clean.description,
            "start_at": _iso(clean.start_at),
            "reason": reason,
        }
        digest = _request_hash("create_subscription", payload)
        for round_ in range(2):
            try:
                with self.db.transaction() as session:
                    if key is not None:
                        earlier = _claim_key(session, key, "create_subscription", digest)
                        if earlier is not None:
                            if earlier.response is None:
                                raise ConflictError(
                                    "a request with this Idempotency-Key is still being "
                                    "processed; retry shortly"
                                )
                            return Stored(json.loads(earlier.response), replayed=True)
                    sub = insert_subscription(session, clean, next_charge, now, actor, note=reason)
                    body = subscription_summary(sub)
                    if key is not None:
                        session.add(
                            IdempotencyKey(
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

    def list_subscriptions(
        self,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        failure: str | None = None,
        failing_since: datetime | None = None,
        failing_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Subscriptions, optionally only those whose open invoice fails with ``failure``
        (a category or a reason) and started failing at/after ``failing_since`` and at/before
        ``failing_before``."""
        if status is not None and status not in {s.value for s in SubscriptionStatus}:
            choices = ", ".join(s.value for s in SubscriptionStatus)
            raise ValidationError(f"unknown status {status!r}; choose one of {choices}")
        limit = max(1, min(limit, MAX_LIST))
        query = select(Subscription).order_by(Subscription.id).limit(limit).offset(max(offset, 0))
        if status is not None:
            query = query.where(Subscription.status == status)
        if customer_id is not None:
            query = query.where(Subscription.customer_id == customer_id)
        conditions = []
        if failure is not None:
            value = clean_failure(failure)
            conditions.append(or_(Invoice.last_category == value, Invoice.last_reason == value))
        if failing_since is not None:
            conditions.append(Invoice.failing_since >= failing_since)
        if failing_before is not None:
            conditions.append(Invoice.failing_since <= failing_before)
        if conditions:
            query = query.where(
                exists().where(
                    Invoice.subscription_id == Subscription.id,
                    Invoice.status == InvoiceStatus.OPEN,
                    Invoice.failing_since.is_not(None),
                    *conditions,
                )
            )
        with self.db.transaction() as session:
            return [subscription_summary(s) for s in session.scalars(query)]

    def show_subscription(self, subscription_id: int) -> dict[str, Any]:
        """The subscription with its invoices, attempts, refunds, events and timeline lines."""
        view = self.subscriptions.show(subscription_id)
        with self.db.transaction() as session:
            sub = session.get_one(Subscription, subscription_id)
            view |= subscription_summary(sub)
            refunds = session.scalars(
                select(Refund).where(Refund.subscription_id == subscription_id).order_by(Refund.id)
            ).all()
            view["refunds"] = [refund_view(r) for r in refunds]
        view["timeline"] = describe_timeline(self.db, subscription_id, self.clock(), self.policy)
        return view

    def timeline(self, subscription_id: int) -> list[str]:
        return describe_timeline(self.db, subscription_id, self.clock(), self.policy)

    # -- subscriptions: change ------------------------------------------------------------------

    def update_subscription(
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
    ) -> dict[str, Any]:
        """Change the price, schedule, timezone, description (``""`` clears it) or currency.

        A new amount applies to invoices opened from now on. A new schedule or timezone
        recomputes the next charge from now.
        """
        actor, reason = clean_actor(actor), clean_reason(reason)
        if all(v is None for v in (amount, schedule, timezone, description, currency)):
            raise ValidationError(
                "nothing to change: give amount, schedule, timezone, description or currency"
            )
        now = self.clock()
        with self.db.transaction() as session:
            sub = _lock_subscription(session, subscription_id)
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
            changes = []
            if merged.amount != sub.amount:
                changes.append(f"amount {sub.amount} → {merged.amount} from the next invoice")
                sub.amount = merged.amount
            if merged.currency != sub.currency:
                changes.append(f"currency {sub.currency} → {merged.currency} from the next invoice")
                sub.currency = merged.currency
            if merged.description != sub.description:
                changes.append("description changed")
                sub.description = merged.description
            if merged.schedule != sub.schedule or merged.timezone != sub.timezone:
                if merged.schedule != sub.schedule:
                    changes.append(f"schedule '{sub.schedule}' → '{merged.schedule}'")
                if merged.timezone != sub.timezone:
                    changes.append(f"timezone {sub.timezone} → {merged.timezone}")
                sub.schedule, sub.timezone = merged.schedule, merged.timezone
                if sub.next_charge_at is not None:
                    sub.next_charge_at = next_due(sub.schedule, sub.timezone, now)
                    changes.append(f"next charge {sub.next_charge_at:%Y-%m-%d %H:%M} UTC")
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
            return subscription_summary(sub)

    def pause(self, subscription_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """No new invoices, no charges until resumed. A charge already sent settles itself."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = _lock_subscription(session, subscription_id)
            if sub.status in (SubscriptionStatus.PAUSED, SubscriptionStatus.CANCELED):
                raise ConflictError(f"subscription {subscription_id} is already {sub.status}")
            previous = sub.status
            held = _hold_pending(session, sub.id, None, now, "subscription_paused", actor)
            sent = _sent_attempts(session, sub.id)
            sub.paused_from, sub.paused_at = previous, now
            change_status(session, sub, SubscriptionStatus.PAUSED, now, reason, actor=actor)
            return subscription_summary(sub) | {
                "held_attempts": held,
                "charges_in_flight": sent,
            }

    def resume(self, subscription_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Back to what it was before the pause (active / past_due when no card problem).

        Periods that fell due while paused are not billed: the next charge is recomputed
        from now. On a subscription set to cancel at period end, resume undoes that.
        """
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = _lock_subscription(session, subscription_id)
            if sub.status == SubscriptionStatus.HELD:
                retried = release_hold(session, sub, now, actor, reason)
                return subscription_summary(sub) | {"retried_invoices": retried}
            if sub.status != SubscriptionStatus.PAUSED:
                if sub.ends_at is not None and sub.status != SubscriptionStatus.CANCELED:
                    return self._unschedule_cancel(session, sub, now, actor, reason)
                raise ConflictError(
                    f"subscription {subscription_id} is {sub.status}, not paused "
                    "(and not set to cancel at period end)"
                )
            target = SubscriptionStatus(sub.paused_from or SubscriptionStatus.ACTIVE.value)
            waiting = (
                SubscriptionStatus.NEEDS_PAYMENT_METHOD,
                SubscriptionStatus.SUSPENDED,
                SubscriptionStatus.HELD,  # paused while held: still held; resume it again
            )
            paused_at = sub.paused_at or now
            new_card = target in waiting and _binding_changed_since(session, sub.id, paused_at)
            if target in waiting and not new_card:
                if sub.cancel_at is not None:
                    sub.cancel_at += now - paused_at  # the pause does not eat the grace period
            else:
                failing = _failing_invoices(session, sub.id)
                target = SubscriptionStatus.PAST_DUE if failing else SubscriptionStatus.ACTIVE
                sub.cancel_at = None
                if new_card:
                    for invoice in failing:
                        if not _has_in_flight(session, invoice.id):
                            invoice.next_attempt_at = now
                            invoice.updated_at = now
                _rearm_withheld(session, sub.id, now)
            if sub.next_charge_at is not None and sub.next_charge_at <= now:
                sub.next_charge_at = next_due(sub.schedule, sub.timezone, now)
            sub.paused_from = sub.paused_at = None
            why = reason + (" (a new card was set while paused)" if new_card else "")
            change_status(session, sub, target, now, why, actor=actor)
            return subscription_summary(sub)

    def _unschedule_cancel(
        self, session: Session, sub: Subscription, now: datetime, actor: str, reason: str
    ) -> dict[str, Any]:
        ends_at = sub.ends_at
        assert ends_at is not None
        sub.next_charge_at = ends_at if ends_at > now else next_due(sub.schedule, sub.timezone, now)
        sub.ends_at = None
        sub.updated_at = now
        record_event(
            session,
            now,
            "cancel_unscheduled",
            f"{reason} (no longer canceled at {ends_at:%Y-%m-%d %H:%M} UTC)",
            subscription_id=sub.id,
            actor=actor,
        )
        return subscription_summary(sub)

    def cancel(
        self, subscription_id: int, *, actor: str, reason: str, at_period_end: bool = False
    ) -> dict[str, Any]:
        """Cancel now (open invoices become ``void``: nobody owes them) or at the end of the
        current period (no further period opens; the scheduler cancels at ``ends_at``)."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = _lock_subscription(session, subscription_id)
            if sub.status == SubscriptionStatus.CANCELED:
                raise ConflictError(f"subscription {subscription_id} is already canceled")
            if at_period_end:
                return self._schedule_cancel(session, sub, now, actor, reason)
            held = _hold_pending(session, sub.id, None, now, "subscription_canceled", actor)
            sent = _sent_attempts(session, sub.id)
            voided = []
            for invoice in session.scalars(
                select(Invoice)
                .where(Invoice.subscription_id == sub.id, Invoice.status == InvoiceStatus.OPEN)
                .order_by(Invoice.id)
                .with_for_update()
            ):
                _close_invoice(session, invoice, InvoiceStatus.VOID, now, actor, reason)
                voided.append(invoice.id)
            change_status(session, sub, SubscriptionStatus.CANCELED, now, reason, actor=actor)
            sub.next_charge_at = sub.cancel_at = sub.ends_at = None
            sub.paused_from = sub.paused_at = None
            return subscription_summary(sub) | {
                "voided_invoices": voided,
                "held_attempts": held,
                # A charge already sent settles by itself; if it took money for a voided
                # invoice, charging flags the attempt ``needs_refund``.
                "charges_in_flight": sent,
            }

    def _schedule_cancel(
        self, session: Session, sub: Subscription, now: datetime, actor: str, reason: str
    ) -> dict[str, Any]:
        if sub.ends_at is not None:
            raise ConflictError(
                f"subscription {sub.id} is already set to cancel at {_iso(sub.ends_at)}"
            )
        if sub.status in (SubscriptionStatus.PAUSED, SubscriptionStatus.SUSPENDED):
            raise ConflictError(
                f"subscription {sub.id} is {sub.status} and opens no new periods: "
                "cancel it now instead"
            )
        if sub.next_charge_at is None:
            raise ConflictError(f"subscription {sub.id} has no next period to end before")
        sub.ends_at = sub.next_charge_at
        sub.next_charge_at = None  # no further period opens
        sub.updated_at = now
        record_event(
            session,
            now,
            "cancel_scheduled",
            f"{reason} (cancels at the end of the period, {sub.ends_at:%Y-%m-%d %H:%M} UTC)",
            subscription_id=sub.id,
            actor=actor,
        )
        return subscription_summary(sub)

    def set_binding(
        self, subscription_id: int, binding_id: str, *, actor: str, reason: str
    ) -> dict[str, Any]:
        """A new card (:meth:`Subscriptions.set_binding`), with the reason in the audit log."""
        actor, reason = clean_actor(actor), clean_reason(reason)

        def note(session: Session) -> None:
            record_event(
                session,
                self.clock(),
                "operator_reason",
                f"set binding: {reason}",
                subscription_id=subscription_id,
                actor=actor,
            )

        return self._audited(note).set_binding(subscription_id, binding_id, actor=actor)

    # -- retries --------------------------------------------------------------------------------

    def retry(self, subscription_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """A manual retry of the oldest open invoice now (:meth:`Subscriptions.retry_now`):
        refused when nothing is open (paid), a charge is in flight, charging is paused or
        the subscription is paused. It does not use up a dunning step; if it pays, the
        invoice is paid and no automatic retry follows."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        with self.db.transaction() as session:
            sub = session.get(Subscription, subscription_id)
            if sub is not None and sub.status == SubscriptionStatus.PAUSED:
                raise ConflictError(f"subscription {subscription_id} is paused: resume it first")

        def note(session: Session) -> None:
            record_event(
                session,
                self.clock(),
                "operator_reason",
                f"manual retry: {reason}",
                subscription_id=subscription_id,
                actor=actor,
            )

        try:
            return self._audited(note).retry_now(subscription_id, self.dispatcher, actor=actor)
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}; the retry is recorded and the scheduler will send it shortly"
            ) from exc

    def bulk_retry(
        self,
        failure: str,
        *,
        actor: str,
        reason: str,
        dry_run: bool = False,
        limit: int = MAX_BULK,
    ) -> dict[str, Any]:
        """Retry every active or past_due subscription whose open invoice last failed with
        ``failure`` (a category such as ``transient`` or a reason such as
        ``insufficient_funds``; anything else is refused, listing the categories).
        A dry run only counts them and writes nothing."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        value = clean_failure_filter(clean_failure(failure))
        in_flight = exists().where(
            ChargeAttempt.invoice_id == Invoice.id,
            ChargeAttempt.state.in_([s.value for s in IN_FLIGHT_STATES]),
        )
        query = (
            select(Subscription.id)
            .join(Invoice, Invoice.subscription_id == Subscription.id)
            .where(
                Subscription.status.in_([s.value for s in CHARGEABLE_STATUSES]),
                Invoice.status == InvoiceStatus.OPEN,
                or_(Invoice.last_category == value, Invoice.last_reason == value),
                ~in_flight,
            )
            .group_by(Subscription.id)
            .order_by(Subscription.id)
            .limit(max(1, min(limit, MAX_BULK)))
        )
        now = self.clock()
        with self.db.transaction() as session:
            ids = list(session.scalars(query))
            circuit = load_circuit(session)
        if dry_run:
            return {"dry_run": True, "failure": value, "count": len(ids), "subscription_ids": ids}
        if ids and not circuit.allows_charging(now):
            raise ChargingPausedError(
                f"charging is paused for everyone until {circuit.retry_at}: {circuit.reason}"
            )
        retried: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for position, sub_id in enumerate(ids):
            try:
                retried.append(
                    self.retry(sub_id, actor=actor, reason=f"bulk retry of {value}: {reason}")
                )
            except ChargingPausedError as exc:
                skipped.extend({"subscription_id": i, "error": str(exc)} for i in ids[position:])
                break
            except BrokerError as exc:
                skipped.append({"subscription_id": sub_id, "error": str(exc)})
            except (ConflictError, NotFoundError) as exc:
                skipped.append({"subscription_id": sub_id, "error": str(exc)})
        return {
            "dry_run": False,
            "failure": value,
            "count": len(retried),
            "subscription_ids": [r["subscription_id"] for r in retried],
            "retried": retried,
            "skipped": skipped,
        }

    # -- invoices -------------------------------------------------------------------------------

    def list_invoices(
        self,
        *,
        status: str | None = None,
        subscription_id: int | None = None,
        failure: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        if status is not None and status not in {s.value for s in InvoiceStatus}:
            choices = ", ".join(s.value for s in InvoiceStatus)
            raise ValidationError(f"unknown invoice status {status!r}; choose one of {choices}")
        query = (
            select(Invoice)
            .order_by(Invoice.id.desc())
            .limit(max(1, min(limit, MAX_LIST)))
            .offset(max(offset, 0))
        )
        if status is not None:
            query = query.where(Invoice.status == status)
        if subscription_id is not None:
            query = query.where(Invoice.subscription_id == subscription_id)
        if failure is not None:
            value = clean_failure(failure)
            query = query.where(or_(Invoice.last_category == value, Invoice.last_reason == value))
        with self.db.transaction() as session:
            return [invoice_summary(i) for i in session.scalars(query)]

    def show_invoice(self, invoice_id: int) -> dict[str, Any]:
        with self.db.transaction() as session:
            invoice = session.get(Invoice, invoice_id)
            if invoice is None:
                raise NotFoundError(f"invoice {invoice_id} does not exist")
            attempts = session.scalars(
                select(ChargeAttempt)
                .where(ChargeAttempt.invoice_id == invoice_id)
                .order_by(ChargeAttempt.id)
            ).all()
            refunds = session.scalars(
                select(Refund).where(Refund.invoice_id == invoice_id).order_by(Refund.id)
            ).all()
            events = session.scalars(
                select(Event).where(Event.invoice_id == invoice_id).order_by(Event.id)
            ).all()
            return (
                invoice_summary(invoice)
                | invoice_view(invoice, list(attempts))
                | {
                    "refunds": [refund_view(r) for r in refunds],
                    "events": [event_view(e) for e in events],
                }
            )

    def void_invoice(self, invoice_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Nobody owes this invoice (a mistake, a goodwill gesture)."""
        return self._close(invoice_id, InvoiceStatus.VOID, actor, reason)

    def write_off_invoice(self, invoice_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """The invoice is owed but will not be collected: ``uncollectible``."""
        return self._close(invoice_id, InvoiceStatus.UNCOLLECTIBLE, actor, reason)

    def _close(self, invoice_id: int, to: InvoiceStatus, actor: str, reason: str) -> dict[str, Any]:
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            invoice = _lock_invoice(session, invoice_id)
            if invoice.status == InvoiceStatus.PAID:
                raise ConflictError(
                    f"invoice {invoice_id} is paid: refund its payment instead of closing it"
                )
            if invoice.status != InvoiceStatus.OPEN:
                raise ConflictError(f"invoice {invoice_id} is already {invoice.status}")
            sent = session.scalars(
                select(ChargeAttempt).where(
                    ChargeAttempt.invoice_id == invoice_id,
                    ChargeAttempt.state.in_(SENT_STATES),
                )
            ).first()
            if sent is not None:
                raise ConflictError(
                    f"invoice {invoice_id} has a charge in flight (attempt {sent.id}, "
                    f"{sent.state}); wait until it settles"
                )
            _hold_pending(session, invoice.subscription_id, invoice.id, now, f"invoice_{to}", actor)
            _close_invoice(session, invoice, to, now, actor, reason)
            sub = _lock_subscription(session, invoice.subscription_id)
            _recover_if_nothing_fails(session, sub, now, actor, f"invoice {invoice_id} {to}")
            return invoice_summary(invoice)

    # -- refunds and reversals ------------------------------------------------------------------

    def _money_gateway(self) -> RefundGateway:
        gateway = refund_gateway(self.gateway)
        if gateway is None:
            raise GatewayError("the configured gateway client cannot refund or reverse")
        return gateway

    def refund(
        self,
        *,
        actor: str,
        reason: str,
        attempt_id: int | None = None,
        invoice_id: int | None = None,
        amount: int | None = None,
        idempotency_key: str | None = None,
    ) -> Stored:
        """Refund (part of) a paid attempt through ``refund.do``.

        ``amount`` None refunds what is left. With an Idempotency-Key, a repeated request
        returns the first answer (or the refund's current state while it is under way).
        """
        actor, reason, key = clean_actor(actor), clean_reason(reason), _check_key(idempotency_key)
        if (attempt_id is None) == (invoice_id is None):
            raise ValidationError("give either an attempt id or an invoice id")
        if amount is not None and (isinstance(amount, bool) or amount <= 0):
            raise ValidationError("amount must be a positive whole number of minor units")
        gateway = self._money_gateway()
        payload = {
            "attempt_id": attempt_id,
            "invoice_id": invoice_id,
            "amount": amount,
            "reason": reason,
        }
        digest = _request_hash("refund", payload)
        now = self.clock()
        for round_ in range(2):
            try:
                with self.db.transaction() as session:
                    # The attempt's row lock first: a concurrent repeat waits here, then
                    # finds the first request's key (committed with its refund row).
                    attempt = _refundable_attempt(session, attempt_id, invoice_id)
                    if key is not None:
                        earlier = _claim_key(session, key, "refund", digest)
                        if earlier is not None:
                            return _replay_refund(session, earlier)
                    _check_not_reversed(session, attempt)
                    taken = _taken(session, attempt.id)
                    left = attempt.amount - taken
                    if left <= 0:
                        raise ConflictError(
                            f"attempt {attempt.id} is already refunded in full "
                            f"({taken} of {attempt.amount}, counting refunds not yet settled)"
                        )
                    to_refund = left if amount is None else amount
                    if to_refund > left:
                        raise ConflictError(
                            f"cannot refund {to_refund}: only {left} of the {attempt.amount} "
                            f"paid is left to refund ({taken} already refunded or under way)"
                        )
                    external = (
                        f"rf-{attempt.id}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"
                        if key is not None
                        else f"rf-{attempt.id}-{secrets.token_hex(12)}"
                    )
                    refund = _new_refund(
                        session, attempt, "refund", to_refund, external, actor, reason, now
                    )
                    if key is not None:
                        session.add(
                            IdempotencyKey(
                                key=key,
                                endpoint="refund",
                                request_hash=digest,
                                response=None,
                                created_at=now,
                            )
                        )
                    session.flush()
                    refund_id, order_id = refund.id, str(attempt.gateway_order_id)
                break
            except IntegrityError:
                if round_ or key is None:
                    raise
        try:
            result = gateway.refund(order_id, to_refund, external)
            outcome = classify_action(result)
        except GatewayError as exc:
            outcome = ActionOutcome(RefundState.FAILED, f"not sent: {exc}")
        body = self._settle_refund(refund_id, outcome, actor, key)
        return Stored(body)

    def reverse(self, attempt_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Cancel a payment made today (UTC) through ``reverse.do``: the whole amount."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        gateway = self._money_gateway()
        now = self.clock()
        with self.db.transaction() as session:
            attempt = _refundable_attempt(session, attempt_id, None)
            paid_on = (attempt.finished_at or attempt.sent_at or attempt.created_at).astimezone(UTC)
            if paid_on.date() < now.astimezone(UTC).date():
                raise ConflictError(
                    f"attempt {attempt.id} was paid on {paid_on:%Y-%m-%d} (UTC): a reversal is "
                    "only possible on the day of payment; refund it instead"
                )
            _check_not_reversed(session, attempt)
            taken = _taken(session, attempt.id)
            if taken:
                raise ConflictError(
                    f"attempt {attempt.id} already has refunds ({taken} refunded or under way): "
                    "refund the rest instead"
                )
            refund = _new_refund(
                session,
                attempt,
                "reverse",
                attempt.amount,
                f"rv-{attempt.id}-{secrets.token_hex(12)}",
                actor,
                reason,
                now,
            )
            session.flush()
            refund_id, order_id = refund.id, str(attempt.gateway_order_id)
        try:
            outcome = classify_action(gateway.reverse(order_id))
        except GatewayError as exc:
            outcome = ActionOutcome(RefundState.FAILED, f"not sent: {exc}")
        return self._settle_refund(refund_id, outcome, actor, None)

    def _settle_refund(
        self, refund_id: int, outcome: ActionOutcome, actor: str, key: str | None
    ) -> dict[str, Any]:
        now = self.clock()
        with self.db.transaction() as session:
            refund = session.get_one(Refund, refund_id, with_for_update=True)
            refund.state = outcome.state.value
            refund.error_code = outcome.error_code
            refund.error_message = outcome.message[:512]
            refund.http_status = outcome.http_status
            refund.updated_at = now
            if outcome.state in (RefundState.SUCCEEDED, RefundState.FAILED):
                refund.finished_at = now
            words = {
                RefundState.SUCCEEDED: "accepted by the gateway",
                RefundState.FAILED: "refused",
                RefundState.UNKNOWN: "OUTCOME UNKNOWN (check the order at the gateway before "
                "trying again)",
                RefundState.REQUESTED: "requested",
            }[outcome.state]
            record_event(
                session,
                now,
                f"{refund.kind}_{outcome.state.value}",
                f"{refund.kind} {refund.id} of {refund.amount} {refund.currency}: {words}: "
                f"{outcome.message}",
                subscription_id=refund.subscription_id,
                invoice_id=refund.invoice_id,
                attempt_id=refund.attempt_id,
                from_state=RefundState.REQUESTED.value,
                to_state=outcome.state.value,
                actor=actor,
            )
            attempt = session.get_one(ChargeAttempt, refund.attempt_id, with_for_update=True)
            returned = session.scalar(
                select(func.coalesce(func.sum(Refund.amount), 0)).where(
                    Refund.attempt_id == attempt.id, Refund.state == RefundState.SUCCEEDED
                )
            )
            if attempt.needs_refund and int(returned or 0) >= attempt.amount:
                attempt.needs_refund = False
                attempt.updated_at = now
                record_event(
                    session,
                    now,
                    "double_charge_refunded",
                    f"attempt {attempt.id}: the second charge was given back in full",
                    subscription_id=refund.subscription_id,
                    invoice_id=refund.invoice_id,
                    attempt_id=attempt.id,
                    actor=actor,
                )
            body = refund_view(refund) | {
                "refundable_left": attempt.amount - _taken(session, attempt.id)
            }
            if key is not None:
                stored = session.scalars(
                    select(IdempotencyKey).where(IdempotencyKey.key == key)
                ).one_or_none()
                if stored is not None:
                    stored.response = json.dumps(body)
                    stored.completed_at = now
            return body

    # -- reading --------------------------------------------------------------------------------

    def audit(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        subscription_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Changes made by people and the backend (not by the machine), newest first."""
        query = (
            select(Event)
            .where(Event.actor.not_in(SYSTEM_ACTORS))
            .order_by(Event.id.desc())
            .limit(max(1, min(limit, MAX_LIST)))
        )
        if before_id is not None:
            query = query.where(Event.id < before_id)
        if subscription_id is not None:
            query = query.where(Event.subscription_id == subscription_id)
        with self.db.transaction() as session:
            return [event_view(e) for e in session.scalars(query)]

    def status(self) -> dict[str, Any]:
        report = system_status(self.db)
        with self.db.transaction() as session:
            refunds = dict(
                session.execute(select(Refund.state, func.count()).group_by(Refund.state)).all()
            )
        report["refunds"] = refunds
        report["refunds_unknown"] = refunds.get(RefundState.UNKNOWN.value, 0)
        return report


# -- helpers on one session ---------------------------------------------------------------------


def _hold_pending(
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


def _rearm_withheld(session: Session, subscription_id: int, now: datetime) -> None:
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


def _sent_attempts(session: Session, subscription_id: int) -> int:
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


def _has_in_flight(session: Session, invoice_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    ChargeAttempt.invoice_id == invoice_id,
                    ChargeAttempt.state.in_([s.value for s in IN_FLIGHT_STATES]),
                )
            )
        )
    )


def _failing_invoices(session: Session, subscription_id: int) -> list[Invoice]:
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


def _binding_changed_since(session: Session, subscription_id: int, since: datetime) -> bool:
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


def _close_invoice(
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


def _recover_if_nothing_fails(
    session: Session, sub: Subscription, now: datetime, actor: str, why: str
) -> None:
    """After an invoice is closed by hand: a subscription in dunning only for it is active
    again (a card known to be bad keeps ``needs_payment_method``)."""
    recover(
        session,
        sub,
        now,
        f"{why}: nothing is failing any more; dunning reset",
        statuses=(SubscriptionStatus.PAST_DUE, SubscriptionStatus.SUSPENDED),
        actor=actor,
    )


def _refundable_attempt(
    session: Session, attempt_id: int | None, invoice_id: int | None
) -> ChargeAttempt:
    if attempt_id is not None:
        attempt = session.get(
            ChargeAttempt, attempt_id, with_for_update=True, populate_existing=True
        )
        if attempt is None:
            raise NotFoundError(f"attempt {attempt_id} does not exist")
    else:
        if session.get(Invoice, invoice_id) is None:
            raise NotFoundError(f"invoice {invoice_id} does not exist")
        found = session.scalars(
            select(ChargeAttempt)
            .where(
                ChargeAttempt.invoice_id == invoice_id,
                ChargeAttempt.state == AttemptState.PAID,
            )
            .order_by(ChargeAttempt.needs_refund, ChargeAttempt.id)
            .limit(1)
            .with_for_update()
        ).first()
        if found is None:
            raise ConflictError(f"invoice {invoice_id} has no paid attempt to refund")
        attempt = found
    if attempt.state != AttemptState.PAID:
        raise ConflictError(
            f"attempt {attempt.id} is {attempt.state}: only a paid attempt can be refunded"
        )
    if not attempt.gateway_order_id:
        raise ConflictError(
            f"attempt {attempt.id}: the gateway's order id is not known; "
            "run `billing reconcile` first"
        )
    return attempt


def _check_not_reversed(session: Session, attempt: ChargeAttempt) -> None:
    reversal = session.scalars(
        select(Refund).where(
            Refund.attempt_id == attempt.id,
            Refund.kind == "reverse",
            Refund.state.in_(TAKEN_STATES),
        )
    ).first()
    if reversal is None:
        return
    if reversal.state == RefundState.SUCCEEDED:
        raise ConflictError(f"attempt {attempt.id} was already reversed (refund {reversal.id})")
    raise ConflictError(
        f"attempt {attempt.id} has a reversal whose outcome is {reversal.state} "
        f"(refund {reversal.id}); check the order at the gateway first"
    )


def _taken(session: Session, attempt_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.attempt_id == attempt_id, Refund.state.in_(TAKEN_STATES)
            )
        )
        or 0
    )


def _new_refund(
    session: Session,
    attempt: ChargeAttempt,
    kind: str,
    amount: int,
    external: str,
    actor: str,
    reason: str,
    now: datetime,
) -> Refund:
    refund = Refund(
        attempt_id=attempt.id,
        invoice_id=attempt.invoice_id,
        subscription_id=attempt.subscription_id,
        kind=kind,
        amount=amount,
        currency=attempt.currency,
        external_refund_id=external,
        state=RefundState.REQUESTED.value,
        actor=actor,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    record_event(
        session,
        now,
        f"{kind}_requested",
        f"{reason} ({kind} {refund.id}: {amount} {attempt.currency} of order "
        f"{attempt.order_number})",
        subscription_id=attempt.subscription_id,
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
        to_state=RefundState.REQUESTED.value,
        actor=actor,
    )
    return refund


def _replay_refund(session: Session, earlier: IdempotencyKey) -> Stored:
    if earlier.response is not None:
        return Stored(json.loads(earlier.response), replayed=True)
    # Under way (or its process died after the call): report the refund as it stands.
    # Same key → same externalRefundId, so the row is found; it is never sent again here.
    refund = session.scalars(
        select(Refund).where(
            Refund.external_refund_id.like(
                "rf-%-" + hashlib.sha256(earlier.key.encode()).hexdigest()[:24]
            )
        )
    ).first()
    if refund is None:  # pragma: no cover - the key and the refund are committed together
        raise ConflictError("a request with this Idempotency-Key is still being processed")
    body = refund_view(refund) | {
        "note": "this refund request is still under way or its outcome was not recorded; "
        "it is not sent again"
    }
    return Stored(body, replayed=True)


__all__ = [
    "SYSTEM_ACTORS",
    "ActionOutcome",
    "Operations",
    "RefundGateway",
    "RefundState",
    "Stored",
    "classify_action",
    "clean_reason",
    "refund_gateway",
]
