"""Settling one attempt's outcome: the attempt, its invoice, its subscription and the
breaker, in one transaction each.

It decides, from a classified outcome and the pure dunning decision, what the attempt,
the invoice and the subscription become (paid, declined, retry at, reconcile, needs an
operator) and records every change with its reason. "Paid" is recorded only from an
outcome that says the order is DEPOSITED. It must never call the gateway: charging and
reconciliation ask, this module only writes what they learned.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.dunning import Action, Decision, decide, next_retry_after_new_binding
from billing.domain.dunning_policy import DunningPolicy
from billing.domain.manual_retry import after_manual
from billing.domain.model import (
    AttemptState,
    AttemptSummary,
    AttemptTrigger,
    Category,
    InvoiceStatus,
    Outcome,
    SubscriptionStatus,
)
from billing.domain.retry_limits import cap_transient
from billing.gateway.results import RATE_LIMITED
from billing.observability.metrics import count_charge_outcome
from billing.services.attempt_limits import apply_card_budget, reached_bank
from billing.services.audit import record_event
from billing.services.lease import LeaseClock, LeaseTerms, clock_lease
from billing.services.lifecycle import cancel_subscription
from billing.services.pipeline.attempt_rows import (
    DECLINED_CATEGORIES,
    lock_attempt,
    move_subscription,
    record_outcome,
)
from billing.services.pipeline.circuit_watch import CircuitWatch
from billing.services.pipeline.not_received import end_recheck, plan_recheck
from billing.services.pipeline.paid_invoice import mark_paid
from billing.services.ports import Clock, system_clock
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.charging")

#: Settled as "no money taken" (or left to an operator), yet re-checked when a callback, the
#: slow operator poll or an audit says otherwise: a late DEPOSITED is recorded, never hidden.
RECHECKABLE_STATES = frozenset(
    {AttemptState.FAILED, AttemptState.DECLINED, AttemptState.NEEDS_OPERATOR}
)
#: Answers to a status query that cannot settle an attempt: ask again later.
UNSETTLED_STATUS = frozenset({Category.UNKNOWN, Category.TRANSIENT, Category.MERCHANT_CONFIG})
CONFIRM_REASON = "binding_not_found"
DECLINED_ORDER = 6  # orderStatus: authorization declined


class Settlement:
    """Writes outcomes: safe to call twice for one attempt (the second finds it settled)."""

    def __init__(
        self,
        db: Database,
        policy: DunningPolicy,
        *,
        clock: Clock = system_clock,
        outage_threshold: int = 20,
        lease: LeaseTerms | None = None,
        lease_clock: LeaseClock | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.outage_threshold = outage_threshold
        self.lease = lease
        self.lease_clock = lease_clock or clock_lease(clock)
        self.circuit = CircuitWatch(
            db,
            pause_backoff=policy.merchant_config.pause_backoff,
            outage_threshold=outage_threshold,
        )

    def recheck(
        self, attempt_id: int, outcome: Outcome, now: datetime, *, answered: bool = False
    ) -> str:
        """Record money found taken by an attempt settled as not paid. ``answered``: the
        gateway gave a definite answer (no such order, or a final state), which ends a
        pending "not received" re-check."""
        if not outcome.is_paid:
            if answered:
                self._end_recheck(attempt_id, now)
            return "unchanged"
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
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
            attempt.next_check_at = None
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
            mark_paid(session, invoice, subscription, attempt, now)
        count_charge_outcome(Category.PAID.value, "paid_on_recheck")
        return "paid_on_recheck"

    def finish(
        self,
        attempt_id: int,
        outcome: Outcome,
        expected: set[AttemptState],
        *,
        status_check: bool,
        count_for_breaker: bool = True,
    ) -> str:
        """Settle ``attempt_id`` if it is still in an ``expected`` state. The batch path
        counts its outcomes for the breaker together (``count_for_breaker=False`` here)."""
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
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
                plan_recheck(session, attempt, outcome, self.lease, self.lease_clock)
            account = session.get_one(Subscription, attempt.subscription_id).merchant_account
        if late_payment:
            # Settled as "no money taken" meanwhile (a stalled send looked lost), yet the
            # gateway took the money: record it (and flag a second charge), never drop it.
            return self.recheck(attempt_id, outcome, now)
        if count_for_breaker:
            self.update_circuit(outcome, now, account)
        count_charge_outcome(outcome.category.value, outcome.reason)
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

    def _end_recheck(self, attempt_id: int, now: datetime) -> None:
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is not None:
                end_recheck(session, attempt, self.lease, self.lease_clock, now)

    def settle_resolved(
        self,
        session: Session,
        attempt: ChargeAttempt,
        outcome: Outcome,
        now: datetime,
        *,
        retry_now: bool = True,
    ) -> Decision:
        """An operator checked an attempt that waited for them: the gateway did not charge
        it (``outcome`` is a decline or a not-received failure). Settled by the dunning
        decision like an automatic outcome; a retry it plans runs at once (the wait for the
        operator already took its time) unless ``retry_now`` is False. The caller holds the
        attempt's row lock."""
        decision = self._settle(session, attempt, outcome, now, manual_keeps_plan=False)
        invoice = session.get_one(Invoice, attempt.invoice_id)
        if retry_now and decision.action is Action.RETRY and invoice.status == InvoiceStatus.OPEN:
            invoice.next_attempt_at = now
        return decision

    def _settle(
        self,
        session: Session,
        attempt: ChargeAttempt,
        outcome: Outcome,
        now: datetime,
        *,
        manual_keeps_plan: bool = True,
    ) -> Decision:
        invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
        subscription = session.get_one(Subscription, attempt.subscription_id, with_for_update=True)
        outcome, decision = self._decide(
            session, attempt, invoice, subscription, outcome, now, manual_keeps_plan
        )
        record_outcome(attempt, outcome, decision, now)
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
            mark_paid(session, invoice, subscription, attempt, now)
            return decision

        # A failure: the invoice stays open unless the subscription is canceled.
        invoice.last_category = outcome.category.value
        invoice.last_reason = outcome.reason
        invoice.failing_since = invoice.failing_since or now
        invoice.updated_at = now
        if invoice.status != InvoiceStatus.OPEN or action is Action.KEEP_PLAN:
            return decision  # a manual retry that did not pay leaves the plan as it was
        invoice.next_attempt_at = (
            decision.at if action in (Action.RETRY, Action.PAUSE_CHARGING) else None
        )
        if action is Action.CANCEL:
            cancel_subscription(session, subscription, now, decision.reason)
            return decision
        move_subscription(session, subscription, invoice, decision, now)
        return decision

    def _decide(
        self,
        session: Session,
        attempt: ChargeAttempt,
        invoice: Invoice,
        subscription: Subscription,
        outcome: Outcome,
        now: datetime,
        manual_keeps_plan: bool,
    ) -> tuple[Outcome, Decision]:
        """The outcome as dunning counts it (a too-long run of outages ends as a decline)
        and the decision for it: the pure dunning rules, a replaced card, the card's attempt
        budget and a manual retry's kept plan."""
        summaries = _prior_summaries(session, invoice.id, attempt.id)
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
        declined = outcome.category in DECLINED_CATEGORIES
        replaced = declined and attempt.binding_version < subscription.binding_version
        if replaced:
            # The card was replaced while this charge was in flight: the old card's decline
            # says nothing about the new one; try it now (a fresh dunning run).
            decision = next_retry_after_new_binding(now)
        decision = apply_card_budget(
            session, self.policy.card_budget, subscription, attempt, reached, decision
        )
        if attempt.trigger == AttemptTrigger.MANUAL and manual_keeps_plan and not replaced:
            decision = after_manual(
                decision,
                outcome,
                planned_at=invoice.next_attempt_at,
                status=SubscriptionStatus(subscription.status),
                cancel_at=subscription.cancel_at,
            )
        return outcome, decision

    def update_circuit(self, outcome: Outcome, now: datetime, account: str = "default") -> None:
        """Count the outcome for merchant ``account``'s breaker (in memory); the row changes
        only on a pause, and only that account pauses."""
        self.circuit.observe([outcome], now, account)


def _prior_summaries(session: Session, invoice_id: int, attempt_id: int) -> list[AttemptSummary]:
    """The invoice's earlier finished attempts, oldest first, as the dunning rules read them."""
    prior = session.scalars(
        select(ChargeAttempt)
        .where(
            ChargeAttempt.invoice_id == invoice_id,
            ChargeAttempt.id != attempt_id,
            ChargeAttempt.category.is_not(None),
        )
        .order_by(ChargeAttempt.attempt_number)
    ).all()
    return [
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
