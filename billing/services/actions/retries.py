"""Manual retries: one subscription's open invoice now, or many that failed the same way.

A manual retry is an extra attempt under a fresh orderNumber; it is refused while a charge
is in flight (or its last charge, ruled "not received", awaits its one re-check) or an
attempt of the invoice waits for an operator (it may have charged), while charging is paused,
on paused or canceled subscriptions, and for a card declined as lost, stolen or fraud until a
new binding is set. It never moves the automatic plan (next attempt, status, cancel
deadline); a payment ends it. Every retry records its actor and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session

from billing.domain.circuit_breaker import Circuit
from billing.domain.model import (
    CHARGEABLE_STATUSES,
    IN_FLIGHT_STATES,
    AttemptState,
    AttemptTrigger,
    Category,
    InvoiceStatus,
    SubscriptionStatus,
    new_order_number,
)
from billing.errors import (
    BrokerError,
    ChargingPausedError,
    ConflictError,
    NotFoundError,
)
from billing.services.audit import clean_actor, clean_failure, clean_reason, record_event
from billing.services.failures import clean_failure_filter
from billing.services.lease import recheck_pending
from billing.services.lifecycle import (
    has_in_flight,
)
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.storage.circuit_row import load_circuit, paused_accounts
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
    Invoice,
    Subscription,
)

MAX_BULK = 10_000


@dataclass(frozen=True)
class RetryActions:
    """Manual and bulk retries."""

    db: Database
    dispatcher: Dispatcher
    clock: Clock = system_clock

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
            circuit = load_circuit(session, sub.merchant_account)
            if not circuit.allows_charging(now):
                whom = (
                    "everyone"
                    if sub.merchant_account == "default"
                    else f"merchant account {sub.merchant_account}"
                )
                raise ChargingPausedError(
                    f"charging is paused for {whom} until {circuit.retry_at}: {circuit.reason}"
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
            refused = retry_refusal(session, sub, invoice.id)
            if refused is not None:
                raise ConflictError(refused)
            if session.scalar(select(recheck_pending(invoice.id))):
                raise ConflictError(
                    f"invoice {invoice.id}: its last charge was ruled not received and is "
                    "checked once more first (within a minute or two); retry after that"
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
        query = _bulk_candidates(value, limit)
        now = self.clock()
        with self.db.transaction() as session:
            ids = list(session.scalars(query))
            circuit = load_circuit(session)
            # Refused as a whole only when every one of them waits for a paused account.
            accounts = set(
                session.scalars(
                    select(Subscription.merchant_account).where(Subscription.id.in_(ids)).distinct()
                )
            )
            all_paused = bool(ids) and accounts <= paused_accounts(session, now)
            if dry_run:
                refused = _refusals(session, ids)
        if dry_run:
            ids = [i for i in ids if i not in refused]
            report: dict[str, Any] = {
                "dry_run": True,
                "failure": value,
                "count": len(ids),
                "subscription_ids": ids,
            }
            if refused:  # what the real run would skip, and why
                report["skipped"] = [{"subscription_id": i, "error": e} for i, e in refused.items()]
            return report
        if all_paused:
            _refuse_paused(accounts, circuit)
        return self._retry_each(ids, value, actor=actor, reason=reason)

    def _retry_each(self, ids: list[int], value: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Retry ``ids`` one by one; a pause stops the rest, other refusals skip one."""
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


def _bulk_candidates(value: str, limit: int) -> Select[Any]:
    """Chargeable subscriptions whose open invoice last failed with ``value`` and has
    nothing in flight or waiting for a recheck (at most ``limit``, capped at MAX_BULK)."""
    in_flight = exists().where(
        ChargeAttempt.invoice_id == Invoice.id,
        ChargeAttempt.state.in_(IN_FLIGHT_STATES),
    )
    return (
        select(Subscription.id)
        .join(Invoice, Invoice.subscription_id == Subscription.id)
        .where(
            Subscription.status.in_(CHARGEABLE_STATUSES),
            Invoice.status == InvoiceStatus.OPEN,
            or_(Invoice.last_category == value, Invoice.last_reason == value),
            ~in_flight,
            ~recheck_pending(Invoice.id),
        )
        .group_by(Subscription.id)
        .order_by(Subscription.id)
        .limit(max(1, min(limit, MAX_BULK)))
    )


def _refuse_paused(accounts: set[str], circuit: Circuit) -> NoReturn:
    """Refuse a bulk retry whose every subscription waits for a paused account."""
    if accounts == {"default"}:
        raise ChargingPausedError(
            f"charging is paused for everyone until {circuit.retry_at}: {circuit.reason}"
        )
    raise ChargingPausedError(
        f"charging is paused for merchant account(s) {', '.join(sorted(accounts))}; "
        "see billing status"
    )


def _new_manual_attempt(
    session: Session, sub: Subscription, invoice: Invoice, now: datetime
) -> ChargeAttempt:
    """A stored attempt (fresh orderNumber) for a manual retry of ``invoice``."""
    number = invoice.attempt_count + 1
    invoice.attempt_count = number
    # ``next_attempt_at`` is left alone: a manual retry never moves the automatic plan (the
    # scheduler waits while it is in flight); only a payment ends the plan.
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


def retry_refusal(session: Session, sub: Subscription, invoice_id: int) -> str | None:
    """Why the open invoice ``invoice_id`` of ``sub`` must not be charged by hand now, or None.

    An attempt waiting for an operator may have taken the money: a new charge could be a
    second one. A card the bank declined as lost, stolen or fraud is never charged again,
    by anyone, until the subscription has a new binding.
    """
    waiting = session.scalars(
        select(ChargeAttempt)
        .where(
            ChargeAttempt.invoice_id == invoice_id,
            ChargeAttempt.state == AttemptState.NEEDS_OPERATOR,
        )
        .limit(1)
    ).first()
    if waiting is not None:
        return (
            f"invoice {invoice_id}: attempt {waiting.id} (order {waiting.order_number}) waits "
            "for an operator and may have been charged; resolve it first "
            f"(billing resolve {waiting.id} --reason ...)"
        )
    refused = session.scalars(
        select(ChargeAttempt)
        .where(
            ChargeAttempt.subscription_id == sub.id,
            ChargeAttempt.category == Category.DO_NOT_RETRY.value,
            ChargeAttempt.binding_version == sub.binding_version,
        )
        .order_by(ChargeAttempt.id.desc())
        .limit(1)
    ).first()
    if refused is not None:
        why = (refused.reason or "do_not_retry").replace("_", " ")
        return (
            f"subscription {sub.id}: the card was declined as {why} (attempt {refused.id}) and "
            "is never retried; set a new binding first"
        )
    return None


def _refusals(session: Session, subscription_ids: list[int]) -> dict[int, str]:
    """For a dry run: the subscriptions a bulk retry would refuse, with the reason."""
    refused: dict[int, str] = {}
    for sub_id in subscription_ids:
        sub = session.get_one(Subscription, sub_id)
        invoice_id = session.scalar(
            select(Invoice.id)
            .where(Invoice.subscription_id == sub_id, Invoice.status == InvoiceStatus.OPEN)
            .order_by(Invoice.period_start)
            .limit(1)
        )
        if invoice_id is not None and (why := retry_refusal(session, sub, invoice_id)):
            refused[sub_id] = why
    return refused
