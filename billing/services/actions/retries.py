"""Manual retries: one subscription's open invoice now, or many that failed the same way.

A manual retry is an extra attempt under a fresh orderNumber; it is refused while a charge
is in flight, while charging is paused, and on paused or canceled subscriptions. It does not
use up a dunning step. Every retry records its actor and reason with the attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from billing.domain.model import (
    CHARGEABLE_STATUSES,
    IN_FLIGHT_STATES,
    AttemptState,
    AttemptTrigger,
    InvoiceStatus,
    SubscriptionStatus,
    new_order_number,
)
from billing.domain.retry_gate import RetryFacts, card_refused
from billing.errors import (
    BrokerError,
    ChargingPausedError,
    ConflictError,
    NotFoundError,
)
from billing.services.audit import clean_actor, clean_failure, clean_reason, record_event
from billing.services.failures import clean_failure_filter
from billing.services.lifecycle import (
    has_in_flight,
)
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.storage.circuit_row import load_circuit
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
    Invoice,
    Subscription,
)

MAX_BULK = 10_000


class RetryActions:
    """Manual and bulk retries."""

    def __init__(
        self, db: Database, *, dispatcher: Dispatcher, clock: Clock = system_clock
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.clock = clock

    def retry(self, subscription_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """An operator's manual retry of the oldest open invoice, now: refused when nothing is
        open (paid), a charge is in flight, charging is paused or the subscription is paused
        or canceled. It does not use up a dunning step; if it pays, the invoice is paid and no
        automatic retry follows."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = session.get(Subscription, subscription_id)
            if sub is None:
                raise NotFoundError(f"subscription {subscription_id} does not exist")
            if sub.status == SubscriptionStatus.PAUSED:
                raise ConflictError(f"subscription {subscription_id} is paused: resume it first")
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
            if has_in_flight(session, invoice.id):
                raise ConflictError(f"invoice {invoice.id} already has a charge in flight")
            if card_refused(_card_facts(session, sub, invoice.id)):
                raise ConflictError(
                    f"subscription {subscription_id}: the card was declined as lost, stolen or "
                    "fraud: set a new card first"
                )
            attempt = _new_manual_attempt(session, sub, invoice, now)
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
            record_event(
                session,
                now,
                "operator_reason",
                f"manual retry: {reason}",
                subscription_id=sub.id,
                actor=actor,
            )
            result: dict[str, Any] = {
                "subscription_id": sub.id,
                "invoice_id": invoice.id,
                "attempt_id": attempt.id,
                "order_number": attempt.order_number,
            }
        try:
            self.dispatcher.charge([result["attempt_id"]])
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}; the retry is recorded and the scheduler will send it shortly"
            ) from exc
        return result

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
            ChargeAttempt.state.in_(IN_FLIGHT_STATES),
        )
        query = (
            select(Subscription.id)
            .join(Invoice, Invoice.subscription_id == Subscription.id)
            .where(
                Subscription.status.in_(CHARGEABLE_STATUSES),
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


def _card_facts(session: Session, sub: Subscription, invoice_id: int) -> RetryFacts:
    """The card the invoice's latest finished attempt used, and how it was declined."""
    last = session.scalars(
        select(ChargeAttempt)
        .where(
            ChargeAttempt.invoice_id == invoice_id,
            ChargeAttempt.state.not_in(IN_FLIGHT_STATES),
        )
        .order_by(ChargeAttempt.id.desc())
        .limit(1)
    ).first()
    return RetryFacts(
        status=sub.status,
        last_category=last.category if last else None,
        last_binding_version=last.binding_version if last else None,
        binding_version=sub.binding_version,
    )


def _new_manual_attempt(
    session: Session, sub: Subscription, invoice: Invoice, now: datetime
) -> ChargeAttempt:
    """A stored attempt (fresh orderNumber) for a manual retry of ``invoice``."""
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
    return attempt
