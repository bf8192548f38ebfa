"""Two-phase merchants: capturing a held (APPROVED) order with deposit.do, automatically.

Called by the charger when a status query says an attempt's order is held. The pure
decision (:func:`billing.domain.two_phase.after_held`) says what comes next; this module
carries it out: deposit.do is stored on the attempt (``capture_sent_at``) in a committed
transaction *before* it is sent, and is never sent again automatically for that attempt —
a repeat or a timeout is settled by the order's status. A capture the gateway refused is
released with reverse.do or handed to an operator, as the merchant's setting says.

It never records "paid" itself: it hands the charger the order status read after the
call, and only a DEPOSITED status is settled as paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from billing.domain.model import AttemptState, Category, Outcome
from billing.domain.two_phase import (
    CAPTURE_PENDING,
    CAPTURE_REFUSED,
    CaptureResult,
    HeldStep,
    TwoPhase,
    after_held,
)
from billing.gateway.classify import classify_status
from billing.gateway.classify_orders import OrderCall, classify_order_call
from billing.gateway.codes import HELD, REVERSED
from billing.gateway.port import DepositRequest, Gateway, ReverseRequest
from billing.services.accounts import gateway_of, two_phase_of
from billing.services.audit import record_event
from billing.services.pipeline.attempt_rows import lock_attempt
from billing.services.pipeline.order_status import settled_or_unknown
from billing.services.ports import Clock, system_clock
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice

log = logging.getLogger("billing.charging")

_RESULTS = {
    OrderCall.ACCEPTED: CaptureResult.ACCEPTED,
    OrderCall.REFUSED: CaptureResult.REFUSED,
    OrderCall.UNKNOWN: CaptureResult.UNKNOWN,
}


@dataclass(frozen=True)
class _Planned:
    step: HeldStep
    order_id: str | None
    order_number: str
    gateway: Gateway  # the subscription's merchant account


class HeldOrders:
    """What the charger does with an attempt whose order is held (see the module doc)."""

    def __init__(
        self, db: Database, gateway: Gateway, two_phase: TwoPhase, *, clock: Clock = system_clock
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.two_phase = two_phase
        self.clock = clock

    def follow_up(
        self, attempt_id: int, status: Outcome, expected: set[AttemptState]
    ) -> Outcome | str | None:
        """``None``: not ours to handle (one-phase merchant: an unknown outcome as before);
        a word: handled and written; an outcome: what the charger settles the attempt with."""
        planned = self._plan(attempt_id, status, expected)
        if planned is None or isinstance(planned, str):
            return planned
        if planned.step is HeldStep.OPERATOR:
            return self._to_operator(attempt_id, expected)
        if planned.order_id is None:  # nothing to capture by yet: ask again later
            return _waiting(status, "the gateway has not named the held order yet")
        if planned.step is HeldStep.WAIT:
            return _waiting(status, "a capture was sent; waiting for the order to be DEPOSITED")
        if planned.step is HeldStep.CAPTURE:
            return self._capture(attempt_id, planned, expected)
        return self._release(attempt_id, planned)

    def _plan(
        self, attempt_id: int, status: Outcome, expected: set[AttemptState]
    ) -> _Planned | str | None:
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None:
                return "missing"
            if AttemptState(attempt.state) not in expected:
                return "settled_elsewhere"
            known = CaptureResult(attempt.capture_result) if attempt.capture_result else None
            step = after_held(
                two_phase_of(session, self.gateway, attempt.subscription_id, self.two_phase), known
            )
            if step is HeldStep.LEAVE:
                return None
            order_id = status.order_id or attempt.gateway_order_id
            attempt.gateway_order_id = order_id
            if step is HeldStep.CAPTURE and order_id is not None:
                # Stored before the call: from here on this attempt's capture is never sent
                # again automatically (a timeout is settled by the order's status).
                attempt.capture_sent_at = attempt.updated_at = now
                attempt.capture_result = CaptureResult.SENT.value
                _event(session, attempt, now, "capture_sent", "order held: capturing it")
            elif step is HeldStep.RELEASE and order_id is not None:
                attempt.capture_result = CaptureResult.RELEASING.value
                attempt.updated_at = now
                _event(session, attempt, now, "hold_release_sent", "capture refused: releasing it")
            gateway = gateway_of(session, self.gateway, attempt.subscription_id)
            return _Planned(step, order_id, attempt.order_number, gateway)

    def _capture(
        self, attempt_id: int, planned: _Planned, expected: set[AttemptState]
    ) -> Outcome | str | None:
        assert planned.order_id is not None
        answer = classify_order_call(planned.gateway.deposit(DepositRequest(planned.order_id)))
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None:
                return "missing"
            attempt.capture_result = _RESULTS[answer.result].value
            attempt.updated_at = now
            _event(session, attempt, now, "capture_answered", f"deposit.do {answer.describe}")
        log.info("attempt %s: deposit.do %s", attempt_id, answer.describe)
        status = classify_status(planned.gateway.order_status(order_number=planned.order_number))
        if status.reason == HELD and answer.result is OrderCall.REFUSED:
            return self.follow_up(attempt_id, status, expected)  # release or operator
        if status.reason == HELD:
            return _waiting(status, f"deposit.do {answer.describe}; the order is still held")
        return settled_or_unknown(status)

    def _release(self, attempt_id: int, planned: _Planned) -> Outcome:
        assert planned.order_id is not None
        answer = classify_order_call(planned.gateway.reverse(ReverseRequest(planned.order_id)))
        log.warning("attempt %s: capture refused; reverse.do %s", attempt_id, answer.describe)
        status = classify_status(planned.gateway.order_status(order_number=planned.order_number))
        if status.reason == REVERSED:
            return Outcome(
                Category.TRANSIENT,
                CAPTURE_REFUSED,
                message=(
                    "the gateway refused to capture the held order; the hold was released "
                    "(REVERSED): the invoice is retried with a new order"
                ),
                order_id=status.order_id,
                order_status=status.order_status,
            )
        if status.reason == HELD:
            return _waiting(status, f"capture refused; reverse.do {answer.describe}")
        return settled_or_unknown(status)

    def _to_operator(self, attempt_id: int, expected: set[AttemptState]) -> str:
        """The merchant wants a person to decide: the hold stays, the attempt waits."""
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None or AttemptState(attempt.state) not in expected:
                return "settled_elsewhere"
            why = (
                "the gateway refused to capture the held order (deposit.do); the customer's "
                "funds stay blocked until an operator runs `billing capture` or `billing release`"
            )
            attempt.state = AttemptState.NEEDS_OPERATOR
            attempt.category = Category.UNKNOWN.value
            attempt.reason = CAPTURE_REFUSED
            attempt.message = why
            attempt.next_check_at = None
            attempt.finished_at = attempt.updated_at = now
            invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
            invoice.next_attempt_at = None
            invoice.updated_at = now
            record_event(
                session,
                now,
                "needs_operator",
                why,
                subscription_id=attempt.subscription_id,
                invoice_id=attempt.invoice_id,
                attempt_id=attempt.id,
                to_state=AttemptState.NEEDS_OPERATOR.value,
            )
        log.error("attempt %s needs an operator: capture refused", attempt_id)
        return "needs_operator"


def _waiting(status: Outcome, message: str) -> Outcome:
    return Outcome(
        Category.UNKNOWN,
        CAPTURE_PENDING,
        message=message[:300],
        order_id=status.order_id,
        order_status=status.order_status,
        http_status=status.http_status,
    )


def _event(session: Session, attempt: ChargeAttempt, now: datetime, kind: str, what: str) -> None:
    record_event(
        session,
        now,
        kind,
        f"{what} (order {attempt.order_number})",
        subscription_id=attempt.subscription_id,
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
    )
