"""Charging one attempt: the worker's use case (settling its outcome is
:mod:`billing.services.pipeline.settlement`).

The attempt's orderNumber is stored before the call. ``charge`` sends
recurrentPayment.do only for an attempt still ``pending``, after moving it to
``sending`` in a committed transaction; an attempt found ``sending`` or ``unknown``
(redelivered message, killed worker, read timeout) is never sent again: it is
settled through getOrderStatusExtended.do by orderNumber.

The send's lease starts on the lease clock (the database's, one clock for every host) in
the claim transaction; the worker never starts the call once less than the longest
possible call is left of the lease, and never waits for a rate-limit slot past that point.
An attempt ruled "not received" is asked about once more after that longest call has
certainly ended, before its invoice's next attempt is created.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from billing.domain.claiming import Step, claim_verdict
from billing.domain.dunning_policy import DunningPolicy
from billing.domain.model import (
    FINAL_STATES,
    AttemptState,
    AttemptTrigger,
    Category,
    Outcome,
)
from billing.domain.stuck_orders import DECLINED_STATUS
from billing.domain.two_phase import TwoPhase
from billing.gateway.accounts import fiscal_receipts, gateway_for
from billing.gateway.classify import classify_payment, classify_status
from billing.gateway.codes import HELD, PENDING
from billing.gateway.port import CHARGE_LANGUAGE, ChargeRequest, Gateway
from billing.observability.logs import log_context
from billing.services.audit import record_event
from billing.services.lease import (
    NOT_RECEIVED,
    LeaseClock,
    LeaseTerms,
    clock_lease,
)
from billing.services.pipeline.attempt_rows import lock_attempt
from billing.services.pipeline.capture import HeldOrders
from billing.services.pipeline.order_status import settles as _settles
from billing.services.pipeline.settlement import RECHECKABLE_STATES, Settlement
from billing.services.pipeline.stuck_orders import StuckOrders
from billing.services.ports import Clock, system_clock
from billing.storage.circuit_row import load_circuit
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.charging")


@dataclass(frozen=True)
class Claimed:
    """An attempt moved to ``sending``: what to send, and when (on this host's clock, only
    ever compared with this host's clock) it was claimed."""

    charge: ChargeRequest
    claimed_at: datetime
    #: The subscription's merchant account: its gateway sends, its breaker counts.
    account: str


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
        longest_call: timedelta | None = None,
        lease_clock: LeaseClock | None = None,
        two_phase: TwoPhase | None = None,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.policy = policy
        self.clock = clock
        self.stale_sending_after = stale_sending_after
        self.outage_threshold = outage_threshold
        #: Lease times (claim, staleness) come from this clock: the database's in production.
        self.lease_clock = lease_clock or clock_lease(clock)
        self.lease = LeaseTerms(
            stale_sending_after,
            stale_sending_after / 2 if longest_call is None else longest_call,
        )
        self.settlement = Settlement(
            db,
            policy,
            clock=clock,
            outage_threshold=outage_threshold,
            lease=self.lease,
            lease_clock=self.lease_clock,
        )
        #: What follows a status that is neither paid nor final: capture a held order
        #: (two-phase merchants), decline an order stuck unpaid (the policy's thresholds).
        self.held = HeldOrders(db, gateway, two_phase or TwoPhase(), clock=clock)
        self.stuck = StuckOrders(db, gateway, policy.stuck_orders, clock=clock)

    def charge(self, attempt_id: int) -> str:
        """Send the attempt to the gateway once; returns a word saying what happened.
        Every log line meanwhile names the attempt, its invoice, subscription and order."""
        with log_context(attempt_id=attempt_id):
            return self._charge(attempt_id)

    def _charge(self, attempt_id: int) -> str:
        now = self.clock()
        request: Claimed | None = None
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
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

        outcome = self.send_claimed(request)
        if outcome is None:
            return "stalled"
        return self.finish(attempt_id, outcome, {AttemptState.SENDING}, status_check=False)

    def send_claimed(self, request: Claimed) -> Outcome | None:
        """Send one claimed attempt once and classify what came back; ``None`` when too
        little of its lease is left to start the call (it stays ``sending``: the
        reconciliation by order status decides). Never writes: the caller settles."""
        left = self.lease.remaining(self.clock() - request.claimed_at)
        if left <= timedelta(0):
            # This worker stalled after claiming the attempt: a call started now could still
            # be under way when the send is ruled stale (and "not received"), and a second
            # order would follow. Sending now could charge twice; the reconciliation decides.
            log.warning(
                "charge: order %s: too little of its lease left; not sending",
                request.charge.order_number,
            )
            return None
        gateway = gateway_for(self.gateway, request.account)
        result = gateway.charge(replace(request.charge, send_within=left.total_seconds()))
        outcome = classify_payment(result)
        if outcome.category is Category.UNKNOWN or _may_have_been_processed(outcome):
            # The order may exist: its status, not the charge answer, decides.
            status = classify_status(gateway.order_status(order_number=request.charge.order_number))
            if _settles(status) or status.reason in (HELD, PENDING):
                outcome = status
            elif outcome.category is Category.TRANSIENT:
                # A 5xx or an HTML page from something in front of the gateway: the charge
                # may still be processed behind it. A new orderNumber is used only once the
                # gateway says, after the call has certainly ended, that it has no such order.
                outcome = replace(outcome, category=Category.UNKNOWN)
        return outcome

    def _claim_for_sending(
        self, session: Session, attempt: ChargeAttempt, now: datetime
    ) -> Claimed | str:
        invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
        subscription = session.get_one(Subscription, attempt.subscription_id)
        account = subscription.merchant_account
        verdict = claim_verdict(
            AttemptState(attempt.state),
            AttemptTrigger(attempt.trigger),
            invoice.status,
            subscription.status,
            charging_allowed=load_circuit(session, account).allows_charging(now),
        )
        if verdict.step is Step.SKIP:
            return skip_unsent(session, attempt, verdict.reason, verdict.why, now)
        if verdict.step is Step.HOLD:
            attempt.enqueued_at = None  # the scheduler sends it again once charging resumes
            attempt.updated_at = now
            log.warning(
                "charge: attempt %s held back: charging is paused for account %s",
                attempt.id,
                account,
            )
            return verdict.step.value
        attempt.binding_version = subscription.binding_version
        attempt.state = AttemptState.SENDING
        # Elapsed time is measured on this host only, from just before the lease starts (on
        # the one clock), so the worker never thinks more of the lease is left than there is.
        claimed_at = self.clock()
        attempt.sent_at = self.lease_clock(session)
        attempt.updated_at = now
        charge = charge_request(
            attempt.order_number,
            attempt.amount,
            attempt.currency,
            subscription.binding_id,
            subscription.description,
            subscription.customer_id,
        )
        if fiscal_receipts(self.gateway, account):
            charge = with_contacts(charge, subscription.customer_email, subscription.customer_phone)
        return Claimed(charge, claimed_at=claimed_at, account=account)

    def reconcile(self, attempt_id: int) -> str:
        """Settle an attempt whose outcome is unknown by asking the gateway for its status.

        Asked about an attempt already settled as not paid (a gateway callback, an audit),
        it re-checks the order: money found taken after all is recorded, never hidden.
        """
        with log_context(attempt_id=attempt_id):
            return self._reconcile(attempt_id)

    def _reconcile(self, attempt_id: int) -> str:
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None:
                return "missing"
            attempt.check_enqueued_at = None  # this check is taken: the next may be enqueued
            lease_now = self.lease_clock(session)
            state = AttemptState(attempt.state)
            if state in RECHECKABLE_STATES and attempt.sent_at is not None:
                order_number = attempt.order_number
                recheck, stale = True, False
            elif state not in (AttemptState.SENDING, AttemptState.UNKNOWN):
                return "already_final" if state in FINAL_STATES else "not_sent"
            else:
                recheck = False
                sent_at = attempt.sent_at or attempt.created_at
                stale = self.lease.is_stale(sent_at, lease_now)
                if state is AttemptState.SENDING and not stale:
                    return "in_flight"  # a worker may still be waiting for the gateway's answer
                order_number = attempt.order_number
            account = session.get_one(Subscription, attempt.subscription_id).merchant_account
        gateway = gateway_for(self.gateway, account)
        outcome = classify_status(gateway.order_status(order_number=order_number))
        if recheck:
            answered = outcome.order_not_found or _settles(outcome)
            return self.settlement.recheck(attempt_id, outcome, now, answered=answered)
        if outcome.order_not_found and stale:
            outcome = Outcome(
                category=Category.TRANSIENT,
                reason=NOT_RECEIVED,
                message="the gateway has no order with this number: the charge did not happen",
                error_code=outcome.error_code,
                http_status=outcome.http_status,
            )
        elif not _settles(outcome):
            if outcome.category is not Category.UNKNOWN:
                self.settlement.update_circuit(outcome, now, account)
            outcome = replace(outcome, category=Category.UNKNOWN)
        return self.finish(
            attempt_id, outcome, {AttemptState.SENDING, AttemptState.UNKNOWN}, status_check=True
        )

    def finish(
        self,
        attempt_id: int,
        outcome: Outcome,
        expected: set[AttemptState],
        *,
        status_check: bool,
        count_for_breaker: bool = True,
    ) -> str:
        """Settle the outcome, after capturing a held order or declining a stuck one."""
        followed: Outcome | str | None = None
        if outcome.reason == HELD:
            followed = self.held.follow_up(attempt_id, outcome, expected)
        elif outcome.reason == PENDING and outcome.category is Category.UNKNOWN:
            followed = self.stuck.follow_up(attempt_id, outcome, expected)
        elif status_check and outcome.order_status == DECLINED_STATUS:
            followed = self.stuck.declined_by_our_decline(attempt_id, outcome)
        if isinstance(followed, str):
            return followed
        if followed is not None:
            outcome, status_check = followed, True
        return self.settlement.finish(
            attempt_id,
            outcome,
            expected,
            status_check=status_check,
            count_for_breaker=count_for_breaker,
        )


def _may_have_been_processed(outcome: Outcome) -> bool:
    """A transient answer that came back over HTTP without the gateway's own JSON verdict
    (5xx, an HTML page): the request reached *something*, which may have passed it on."""
    return (
        outcome.category is Category.TRANSIENT
        and outcome.http_status is not None
        and outcome.error_code is None
    )


def charge_request(
    order_number: str,
    amount: int,
    currency: str,
    binding_id: str,
    description: str | None,
    customer_id: str,
) -> ChargeRequest:
    """The recurrentPayment.do request of a claimed attempt (its stored orderNumber)."""
    return ChargeRequest(
        order_number=order_number,
        binding_id=binding_id,
        amount=amount,
        currency=currency,
        description=description,
        client_id=customer_id,
        language=CHARGE_LANGUAGE,
    )


def skip_unsent(
    session: Session, attempt: ChargeAttempt, reason: str, why: str, now: datetime
) -> str:
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


def with_contacts(charge: ChargeRequest, email: str | None, phone: str | None) -> ChargeRequest:
    """The charge with the customer's email/phone for the fiscal receipt (54-FZ), sent in
    ``additionalParameters`` when the merchant account issues receipts."""
    return replace(charge, customer_email=email, customer_phone=phone)
