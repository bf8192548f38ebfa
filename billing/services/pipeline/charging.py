"""Charging one attempt and settling its outcome: the worker's use case.

The attempt's orderNumber is stored before the call. ``charge`` sends
recurrentPayment.do only for an attempt still ``pending``, after moving it to
``sending`` in a committed transaction; an attempt found ``sending`` or ``unknown``
(redelivered message, killed worker, read timeout) is never sent again: it is
settled through getOrderStatusExtended.do by orderNumber.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.domain import circuit_breaker as breaker
from billing.domain.dunning import Action, Decision, decide, next_retry_after_new_binding
from billing.domain.dunning_policy import DunningPolicy
from billing.domain.model import (
    FINAL_STATES,
    AttemptState,
    AttemptSummary,
    AttemptTrigger,
    Category,
    InvoiceStatus,
    Outcome,
    SubscriptionStatus,
)
from billing.domain.retry_limits import cap_transient
from billing.gateway.classify import classify_payment, classify_status
from billing.gateway.port import CHARGE_LANGUAGE, ChargeRequest, Gateway
from billing.gateway.results import RATE_LIMITED
from billing.services.attempt_limits import apply_card_budget, reached_bank
from billing.services.audit import record_event
from billing.services.lifecycle import change_status, recover
from billing.services.ports import Clock, system_clock
from billing.storage.circuit_row import load_circuit, save_circuit
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, GatewayCircuit, Invoice, Subscription

log = logging.getLogger("billing.charging")

#: Settled as "no money taken", yet re-checked when a callback or an audit says otherwise.
RECHECKABLE_STATES = frozenset({AttemptState.FAILED, AttemptState.DECLINED})
DECLINED_CATEGORIES = frozenset(
    {Category.SOFT_DECLINE, Category.HARD_DECLINE, Category.DO_NOT_RETRY}
)
#: Answers to a status query that cannot settle an attempt: ask again later.
UNSETTLED_STATUS = frozenset({Category.UNKNOWN, Category.TRANSIENT, Category.MERCHANT_CONFIG})
#: Statuses a paid invoice brings back to active (a payment proves the card works).
RECOVERING = (
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.NEEDS_PAYMENT_METHOD,
    SubscriptionStatus.SUSPENDED,
    SubscriptionStatus.HELD,  # an operator's manual retry went through with the fixed data
)
CONFIRM_REASON = "binding_not_found"
DECLINED_ORDER = 6  # orderStatus: authorization declined


@dataclass(frozen=True)
class _Claimed:
    """An attempt moved to ``sending``: what to send, and when it was claimed."""

    charge: ChargeRequest
    sent_at: datetime


class Charger:
    """Charges attempts by id and settles their outcomes. Safe to call twice for one id."""

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        policy: DunningPolicy,
        *,
        clock: Clock = system_clock,
        stale_sending_after: timedelta = timedelta(minutes=2),
        outage_threshold: int = 20,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.policy = policy
        self.clock = clock
        self.stale_sending_after = stale_sending_after
        self.outage_threshold = outage_threshold

    # -- charge -----------------------------------------------------------------------------

    def charge(self, attempt_id: int) -> str:
        """Send the attempt to the gateway once; returns a word saying what happened."""
        now = self.clock()
        request: _Claimed | None = None
        with self.db.transaction() as session:
            attempt = _lock_attempt(session, attempt_id)
            if attempt is None:
                log.warning("charge: attempt %s does not exist", attempt_id)
                return "missing"
            state = AttemptState(attempt.state)
            if state in FINAL_STATES:
                log.info("charge: attempt %s is already %s; nothing to do", attempt_id, state)
                return "already_final"
            if state is AttemptState.PENDING:
                claimed = self._claim_for_sending(session, attempt, now)
                if isinstance(claimed, str):
                    return claimed
                request = claimed
        if request is None:
            log.info("charge: attempt %s may have reached the gateway; reconciling", attempt_id)
            return self.reconcile(attempt_id)

        if self.clock() - request.sent_at > self.stale_sending_after / 2:
            # This worker stalled after claiming the attempt: the reconciliation may already
            # have decided nothing was sent. Sending now could charge twice; let it decide.
            log.warning("charge: attempt %s claimed too long ago; not sending", attempt_id)
            return "stalled"
        result = self.gateway.charge(request.charge)
        outcome = classify_payment(result)
        if outcome.category is Category.UNKNOWN or _may_have_been_processed(outcome):
            # The order may exist: its status, not the charge answer, decides.
            status = classify_status(
                self.gateway.order_status(order_number=request.charge.order_number)
            )
            if _settles(status):
                outcome = status
            elif outcome.category is Category.TRANSIENT:
                # A 5xx or an HTML page from something in front of the gateway: the charge
                # may still be processed behind it. A new orderNumber is used only once the
                # gateway says, after the call has certainly ended, that it has no such order.
                outcome = replace(outcome, category=Category.UNKNOWN)
        return self._finish(attempt_id, outcome, {AttemptState.SENDING}, status_check=False)

    def _claim_for_sending(
        self, session: Session, attempt: ChargeAttempt, now: datetime
    ) -> _Claimed | str:
        invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
        if invoice.status != InvoiceStatus.OPEN:
            return _skip(session, attempt, "invoice_closed", f"invoice is {invoice.status}", now)
        if not load_circuit(session).allows_charging(now):
            attempt.enqueued_at = None  # the scheduler sends it again once charging resumes
            attempt.updated_at = now
            log.warning("charge: attempt %s held back: charging is paused", attempt.id)
            return "paused"
        subscription = session.get_one(Subscription, attempt.subscription_id)
        stopped = {
            SubscriptionStatus.PAUSED.value,
            SubscriptionStatus.CANCELED.value,
            SubscriptionStatus.HELD.value,
        }
        if subscription.status in stopped and attempt.trigger != AttemptTrigger.MANUAL:
            status = subscription.status
            return _skip(
                session, attempt, f"subscription_{status}", f"subscription is {status}", now
            )
        attempt.binding_version = subscription.binding_version
        attempt.state = AttemptState.SENDING
        attempt.sent_at = attempt.updated_at = self.clock()
        charge = ChargeRequest(
            order_number=attempt.order_number,
            binding_id=subscription.binding_id,
            amount=attempt.amount,
            currency=attempt.currency,
            description=subscription.description,
            client_id=subscription.customer_id,
            language=CHARGE_LANGUAGE,
        )
        return _Claimed(charge, sent_at=attempt.sent_at)

    # -- reconcile --------------------------------------------------------------------------

    def reconcile(self, attempt_id: int) -> str:
        """Settle an attempt whose outcome is unknown by asking the gateway for its status.

        Asked about an attempt already settled as not paid (a gateway callback, an audit),
        it re-checks the order: money found taken after all is recorded, never hidden.
        """
        now = self.clock()
        with self.db.transaction() as session:
            attempt = _lock_attempt(session, attempt_id)
            if attempt is None:
                return "missing"
            state = AttemptState(attempt.state)
            if state in RECHECKABLE_STATES and attempt.sent_at is not None:
                order_number = attempt.order_number
                recheck = True
            elif state not in (AttemptState.SENDING, AttemptState.UNKNOWN):
                return "already_final" if state in FINAL_STATES else "not_sent"
            else:
                recheck = False
                sent_at = attempt.sent_at or attempt.created_at
                if state is AttemptState.SENDING and now - sent_at < self.stale_sending_after:
                    return "in_flight"  # a worker may still be waiting for the gateway's answer
                order_number = attempt.order_number
        outcome = classify_status(self.gateway.order_status(order_number=order_number))
        if recheck:
            return self._recheck(attempt_id, outcome, now)
        if outcome.order_not_found and now - sent_at >= self.stale_sending_after:
            outcome = Outcome(
                category=Category.TRANSIENT,
                reason="not_received",
                message="the gateway has no order with this number: the charge did not happen",
                error_code=outcome.error_code,
                http_status=outcome.http_status,
            )
        elif not _settles(outcome):
            if outcome.category is not Category.UNKNOWN:
                self._update_circuit(outcome, now)
            outcome = replace(outcome, category=Category.UNKNOWN)
        return self._finish(
            attempt_id, outcome, {AttemptState.SENDING, AttemptState.UNKNOWN}, status_check=True
        )

    def _recheck(self, attempt_id: int, outcome: Outcome, now: datetime) -> str:
        if not outcome.is_paid:
            return "unchanged"
        with self.db.transaction() as session:
            attempt = _lock_attempt(session, attempt_id)
            if attempt is None or AttemptState(attempt.state) not in RECHECKABLE_STATES:
                return "settled_elsewhere"
            previous = attempt.state
            invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
            subscription = session.get_one(
                Subscription, attempt.subscription_id, with_for_update=True
            )
            attempt.state = AttemptState.PAID
            attempt.category = Category.PAID.value
            attempt.reason = "paid_on_recheck"
            attempt.message = f"recorded as {previous}, but the order status says DEPOSITED"
            attempt.gateway_order_id = outcome.order_id or attempt.gateway_order_id
            attempt.updated_at = now
            record_event(
                session,
                now,
                "late_payment_found",
                attempt.message,
                subscription_id=subscription.id,
                invoice_id=invoice.id,
                attempt_id=attempt.id,
                from_state=previous,
                to_state="paid",
            )
            log.error("attempt %s: %s", attempt.id, attempt.message)
            self._mark_paid(session, invoice, subscription, attempt, now)
        return "paid_on_recheck"

    # -- settle -----------------------------------------------------------------------------

    def _finish(
        self,
        attempt_id: int,
        outcome: Outcome,
        expected: set[AttemptState],
        *,
        status_check: bool,
    ) -> str:
        now = self.clock()
        with self.db.transaction() as session:
            attempt = _lock_attempt(session, attempt_id)
            if attempt is None:
                return "missing"
            state = AttemptState(attempt.state)
            late_payment = state not in expected and outcome.is_paid and state in RECHECKABLE_STATES
            if state not in expected and not late_payment:
                log.info("attempt %s was settled elsewhere; keeping that result", attempt_id)
                return "settled_elsewhere"
            if not late_payment:
                if status_check:
                    attempt.status_checks += 1
                decision = self._settle(session, attempt, outcome, now)
        if late_payment:
            # Settled as "no money taken" meanwhile (a stalled send looked lost), yet the
            # gateway took the money: record it (and flag a second charge), never drop it.
            return self._recheck(attempt_id, outcome, now)
        self._update_circuit(outcome, now)
        alert = (Category.MERCHANT_CONFIG, Category.REQUEST_REJECTED)
        level = logging.ERROR if outcome.category in alert else logging.INFO
        log.log(
            level,
            "attempt %s: %s (%s, errorCode %s, actionCode %s) -> %s",
            attempt_id,
            outcome.category.value,
            outcome.reason,
            outcome.error_code,
            outcome.action_code,
            decision.action.value,
        )
        return outcome.category.value

    def _settle(
        self, session: Session, attempt: ChargeAttempt, outcome: Outcome, now: datetime
    ) -> Decision:
        invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
        subscription = session.get_one(Subscription, attempt.subscription_id, with_for_update=True)
        prior = session.scalars(
            select(ChargeAttempt)
            .where(
                ChargeAttempt.invoice_id == invoice.id,
                ChargeAttempt.id != attempt.id,
                ChargeAttempt.category.is_not(None),
            )
            .order_by(ChargeAttempt.attempt_number)
        ).all()
        summaries = [
            AttemptSummary(
                category=Category(p.category),
                trigger=AttemptTrigger(p.trigger),
                binding_version=p.binding_version,
                confirm_before_decline=p.reason == CONFIRM_REASON,
                at=p.sent_at or p.created_at,
                counted=p.reason != RATE_LIMITED,
            )
            for p in prior
            if p.category is not None and p.state != AttemptState.UNKNOWN
        ]
        reached = reached_bank(outcome.reason)
        rate_limited = outcome.reason == RATE_LIMITED
        outcome = cap_transient(
            self.policy.transient, summaries, outcome, now, counted=not rate_limited
        )
        decision = decide(
            self.policy,
            summaries,
            outcome,
            now,
            binding_version=subscription.binding_version,
            trigger=AttemptTrigger(attempt.trigger),
            first_unknown_at=attempt.sent_at,
            checks_so_far=max(attempt.status_checks - 1, 0),
        )
        card_refused = outcome.category in (Category.HARD_DECLINE, Category.DO_NOT_RETRY)
        if card_refused and attempt.binding_version < subscription.binding_version:
            # The card was replaced while this charge was in flight: try the new one now.
            decision = next_retry_after_new_binding(now)
        decision = apply_card_budget(
            session, self.policy.card_budget, subscription, attempt, reached, decision
        )
        _record_outcome(attempt, outcome, decision, now)
        action = decision.action
        if action is Action.RECONCILE:
            return decision
        if action is Action.NEEDS_OPERATOR:
            invoice.next_attempt_at = None
            record_event(
                session,
                now,
                "needs_operator",
                decision.reason,
                subscription_id=subscription.id,
                invoice_id=invoice.id,
                attempt_id=attempt.id,
                from_state="unknown",
                to_state="needs_operator",
            )
            log.error("attempt %s needs an operator: %s", attempt.id, decision.reason)
            return decision
        record_event(
            session,
            now,
            f"attempt_{attempt.state}",
            decision.reason,
            subscription_id=subscription.id,
            invoice_id=invoice.id,
            attempt_id=attempt.id,
            to_state=attempt.state,
        )
        if action is Action.MARK_PAID:
            self._mark_paid(session, invoice, subscription, attempt, now)
            return decision

        # A failure: the invoice stays open unless the subscription is canceled.
        invoice.last_category = outcome.category.value
        invoice.last_reason = outcome.reason
        invoice.failing_since = invoice.failing_since or now
        invoice.updated_at = now
        if invoice.status != InvoiceStatus.OPEN:
            return decision
        invoice.next_attempt_at = (
            decision.at if action in (Action.RETRY, Action.PAUSE_CHARGING) else None
        )
        if action is Action.CANCEL:
            cancel_subscription(session, subscription, now, decision.reason)
            return decision
        frozen = {SubscriptionStatus.CANCELED.value, SubscriptionStatus.PAUSED.value}
        new_status = decision.subscription_status
        if new_status is not None and subscription.status not in frozen:
            if new_status.value != subscription.status:
                change_status(
                    session, subscription, new_status, now, decision.reason, invoice_id=invoice.id
                )
            subscription.cancel_at = decision.cancel_at
            subscription.updated_at = now
        return decision

    def _mark_paid(
        self,
        session: Session,
        invoice: Invoice,
        subscription: Subscription,
        attempt: ChargeAttempt,
        now: datetime,
    ) -> None:
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

    # -- breaker ----------------------------------------------------------------------------

    def _update_circuit(self, outcome: Outcome, now: datetime) -> None:
        category = outcome.category
        if category is Category.UNKNOWN or outcome.reason == RATE_LIMITED:
            return  # our own throttling says nothing about the gateway's health
        with self.db.transaction() as session:
            if category not in (Category.TRANSIENT, Category.MERCHANT_CONFIG):
                # Cheap path for the common case: reset a non-zero outage count, if any.
                session.execute(
                    update(GatewayCircuit)
                    .where(
                        GatewayCircuit.state == "closed", GatewayCircuit.consecutive_failures > 0
                    )
                    .values(consecutive_failures=0, updated_at=now)
                )
                return
            current = load_circuit(session, for_update=True)
            after = breaker.after_outcome(
                current,
                category,
                outcome.reason,
                now,
                pause_backoff=self.policy.merchant_config.pause_backoff,
                outage_threshold=self.outage_threshold,
            )
            if after != current:
                save_circuit(session, after, now)
                if after.state != current.state:
                    record_event(
                        session,
                        now,
                        "charging_paused",
                        after.reason or "",
                        from_state=current.state,
                        to_state=after.state,
                    )
                    log.error(
                        "CHARGING PAUSED for everyone until %s: %s", after.retry_at, after.reason
                    )


def _may_have_been_processed(outcome: Outcome) -> bool:
    """A transient answer that came back over HTTP without the gateway's own JSON verdict
    (5xx, an HTML page): the request reached *something*, which may have passed it on."""
    return (
        outcome.category is Category.TRANSIENT
        and outcome.http_status is not None
        and outcome.error_code is None
    )


def _settles(status: Outcome) -> bool:
    """Whether a status-query answer settles the attempt: a final order state does (a
    declined order, orderStatus 6, whatever its action code); "pending", "not found" or a
    failed query does not."""
    if status.order_not_found:
        return False
    return status.category not in UNSETTLED_STATUS or status.order_status == DECLINED_ORDER


def _skip(session: Session, attempt: ChargeAttempt, reason: str, why: str, now: datetime) -> str:
    """Close a never-sent attempt that must not be sent: no money moved."""
    attempt.state = AttemptState.FAILED
    attempt.reason = reason
    attempt.message = f"{why}; not charged"
    attempt.finished_at = attempt.updated_at = now
    record_event(
        session,
        now,
        "attempt_skipped",
        attempt.message,
        subscription_id=attempt.subscription_id,
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
        from_state="pending",
        to_state="failed",
    )
    return reason


def _lock_attempt(session: Session, attempt_id: int) -> ChargeAttempt | None:
    return session.get(ChargeAttempt, attempt_id, with_for_update=True, populate_existing=True)


def _record_outcome(
    attempt: ChargeAttempt, outcome: Outcome, decision: Decision, now: datetime
) -> None:
    attempt.category = outcome.category.value
    attempt.reason = outcome.reason[:64]
    attempt.message = (outcome.message or decision.reason)[:512]
    attempt.error_code = outcome.error_code
    attempt.action_code = outcome.action_code
    attempt.http_status = outcome.http_status
    attempt.gateway_order_id = outcome.order_id or attempt.gateway_order_id
    attempt.updated_at = now
    if decision.action is Action.RECONCILE:
        attempt.state = AttemptState.UNKNOWN
        attempt.next_check_at = decision.at
        return
    attempt.next_check_at = None
    attempt.finished_at = now
    if decision.action is Action.NEEDS_OPERATOR:
        attempt.state = AttemptState.NEEDS_OPERATOR
    elif outcome.category is Category.PAID:
        attempt.state = AttemptState.PAID
    elif outcome.category in DECLINED_CATEGORIES:
        attempt.state = AttemptState.DECLINED
    else:
        attempt.state = AttemptState.FAILED


def cancel_subscription(
    session: Session, subscription: Subscription, now: datetime, reason: str
) -> None:
    """Cancel a subscription: no new invoices; its open invoices become uncollectible."""
    for invoice in session.scalars(
        select(Invoice)
        .where(Invoice.subscription_id == subscription.id, Invoice.status == InvoiceStatus.OPEN)
        .with_for_update()
    ):
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        invoice.next_attempt_at = None
        invoice.closed_at = invoice.updated_at = now
        record_event(
            session,
            now,
            "invoice_uncollectible",
            reason,
            subscription_id=subscription.id,
            invoice_id=invoice.id,
            from_state="open",
            to_state="uncollectible",
        )
    change_status(session, subscription, SubscriptionStatus.CANCELED, now, reason)
    subscription.next_charge_at = None
    subscription.cancel_at = None
    subscription.updated_at = now
