"""An operator captures or releases a held (two-phase, APPROVED) order: ``billing capture``
and ``billing release``.

It decides, from the order status asked right now, whether the call is allowed (only a held
order is captured or released; one already DEPOSITED is recorded as paid instead), stores
the call on the attempt with its actor and reason before sending it, and records what the
order status says afterwards: paid only once DEPOSITED; released (REVERSED) → the attempt
failed without money taken and the invoice follows its retry schedule. Anything else
changes nothing but the audit trail. Every call records its actor and reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from billing.domain.model import AttemptState, Category, Outcome
from billing.domain.two_phase import HOLD_RELEASED, CaptureResult
from billing.errors import ConflictError, NotFoundError
from billing.gateway.classify import classify_status
from billing.gateway.classify_orders import OrderCall, OrderCallOutcome, classify_order_call
from billing.gateway.codes import HELD, REVERSED
from billing.gateway.port import DepositRequest, Gateway, ReverseRequest
from billing.services.accounts import gateway_of
from billing.services.actions.order_actions import OrderActions
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.pipeline.attempt_rows import lock_attempt
from billing.storage.tables import ChargeAttempt

#: Attempts an operator may capture or release: not settled, and not being sent right now.
_OPEN_STATES = frozenset({AttemptState.UNKNOWN.value, AttemptState.NEEDS_OPERATOR.value})
_ANSWERED = {
    OrderCall.ACCEPTED: CaptureResult.ACCEPTED,
    OrderCall.REFUSED: CaptureResult.REFUSED,
    OrderCall.UNKNOWN: CaptureResult.UNKNOWN,
}


class HeldOrderActions(OrderActions):
    """``capture`` / ``release`` of an attempt's held order (see the module docstring)."""

    def capture(self, attempt_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Capture the held order with deposit.do (the whole amount); paid once DEPOSITED."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        order_number, status = self._held_order(attempt_id, "capture")
        if status.is_paid:
            return self._paid(attempt_id, status, actor, reason, "already captured (DEPOSITED)")
        order_id, gateway = self._store(
            attempt_id, status, CaptureResult.SENT, "capture", actor, reason
        )
        answer = classify_order_call(gateway.deposit(DepositRequest(order_id)))
        self._answered(attempt_id, "capture", f"deposit.do {answer.describe}", actor, answer)
        after = classify_status(gateway.order_status(order_number=order_number))
        if after.is_paid:
            return self._paid(attempt_id, after, actor, reason, "captured (DEPOSITED)")
        return self._unchanged(
            attempt_id,
            "capture_not_confirmed",
            f"deposit.do {answer.describe}; the order is {_words(after)}: not recorded as paid",
        )

    def release(self, attempt_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Release the hold with reverse.do; once REVERSED the attempt failed (no money taken)
        and the invoice follows its retry schedule (void it to stop charging)."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        order_number, status = self._held_order(attempt_id, "release")
        if status.is_paid:
            return self._paid(
                attempt_id, status, actor, reason, "already captured (DEPOSITED); refund it instead"
            )
        order_id, gateway = self._store(
            attempt_id, status, CaptureResult.RELEASING, "release", actor, reason
        )
        answer = classify_order_call(gateway.reverse(ReverseRequest(order_id)))
        self._answered(attempt_id, "release", f"reverse.do {answer.describe}", actor, None)
        after = classify_status(gateway.order_status(order_number=order_number))
        if after.is_paid:
            return self._paid(attempt_id, after, actor, reason, "captured meanwhile (DEPOSITED)")
        if after.reason != REVERSED:
            return self._unchanged(
                attempt_id,
                "release_not_confirmed",
                f"reverse.do {answer.describe}; the order is {_words(after)}: nothing changed",
            )
        return self._released(attempt_id, after, actor)

    # -- steps ----------------------------------------------------------------------------------

    def _held_order(self, attempt_id: int, verb: str) -> tuple[str, Outcome]:
        with self.db.transaction() as session:
            attempt = session.get(ChargeAttempt, attempt_id)
            if attempt is None:
                raise NotFoundError(f"attempt {attempt_id} does not exist")
            if attempt.state not in _OPEN_STATES:
                raise ConflictError(
                    f"attempt {attempt_id} is {attempt.state}; only an unsettled attempt whose "
                    f"order is held can be {verb}d"
                )
            order_number = attempt.order_number
            gateway = gateway_of(session, self.gateway, attempt.subscription_id)
        status = classify_status(gateway.order_status(order_number=order_number))
        if not status.is_paid and (status.reason != HELD or not status.order_id):
            raise ConflictError(
                f"attempt {attempt_id}: order {order_number} is {_words(status)}, not held "
                f"(APPROVED); nothing to {verb}, nothing changed"
            )
        return order_number, status

    def _store(
        self,
        attempt_id: int,
        status: Outcome,
        result: CaptureResult,
        verb: str,
        actor: str,
        reason: str,
    ) -> tuple[str, Gateway]:
        """The call, stored with who asked and why before it is sent; the order id and the
        gateway of the attempt's merchant account (read on the locked row) to send it to."""
        now = self.clock()
        with self.db.transaction() as session:
            attempt = _open_attempt(session, attempt_id)
            order_id = status.order_id or attempt.gateway_order_id
            assert order_id is not None  # checked by _held_order
            attempt.gateway_order_id = order_id
            if result is CaptureResult.SENT:
                attempt.capture_sent_at = now
            attempt.capture_result = result.value
            attempt.updated_at = now
            _audit(session, attempt, f"{verb}_requested", f"{verb} the held order", actor)
            _audit(
                session, attempt, "operator_reason", f"{verb} attempt {attempt.id}: {reason}", actor
            )
            return order_id, gateway_of(session, self.gateway, attempt.subscription_id)

    def _answered(
        self, attempt_id: int, verb: str, what: str, actor: str, answer: OrderCallOutcome | None
    ) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            attempt = _open_attempt(session, attempt_id, strict=False)
            if answer is not None:
                attempt.capture_result = _ANSWERED[answer.result].value
            attempt.updated_at = now
            _audit(session, attempt, f"{verb}_answered", what, actor)

    def _paid(
        self, attempt_id: int, status: Outcome, actor: str, reason: str, what: str
    ) -> dict[str, Any]:
        result = self.settlement.finish(
            attempt_id, status, {AttemptState.UNKNOWN}, status_check=True
        )
        with self.db.transaction() as session:
            attempt = session.get_one(ChargeAttempt, attempt_id)
            attempt.updated_at = self.clock()
            if attempt.state != AttemptState.PAID:
                raise ConflictError(f"attempt {attempt_id} was settled meanwhile ({result})")
            flagged = bool(attempt.needs_refund)
            text = f"{what}; recorded as paid" + (
                " — the invoice was already paid: a second charge to refund" if flagged else ""
            )
            _audit(session, attempt, "attempt_resolved", text, actor)
            return _result(attempt, "second_charge" if flagged else "paid", text)

    def _released(self, attempt_id: int, status: Outcome, actor: str) -> dict[str, Any]:
        now = self.clock()
        outcome = Outcome(
            Category.TRANSIENT,
            HOLD_RELEASED,
            message="an operator released the held order (REVERSED); no money taken",
            order_id=status.order_id,
            order_status=status.order_status,
        )
        with self.db.transaction() as session:
            attempt = _open_attempt(session, attempt_id)
            decision = self.settlement.settle_resolved(
                session, attempt, outcome, now, retry_now=False
            )
            text = f"released (REVERSED); {decision.reason}"
            _audit(session, attempt, "attempt_resolved", text, actor)
            return _result(attempt, "released", text)

    def _unchanged(self, attempt_id: int, result: str, text: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return _result(session.get_one(ChargeAttempt, attempt_id), result, text)


def _open_attempt(session: Session, attempt_id: int, *, strict: bool = True) -> ChargeAttempt:
    attempt = lock_attempt(session, attempt_id)
    if attempt is None or (strict and attempt.state not in _OPEN_STATES):
        raise ConflictError(f"attempt {attempt_id} was settled meanwhile; nothing changed")
    return attempt


def _audit(session: Session, attempt: ChargeAttempt, kind: str, what: str, actor: str) -> None:
    record_event(
        session,
        attempt.updated_at or attempt.created_at,
        kind,
        what,
        subscription_id=attempt.subscription_id,
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
        actor=actor,
    )


def _words(status: Outcome) -> str:
    return status.reason.replace("_", " ")


def _result(attempt: ChargeAttempt, result: str, what: str) -> dict[str, Any]:
    return {
        "attempt_id": attempt.id,
        "invoice_id": attempt.invoice_id,
        "subscription_id": attempt.subscription_id,
        "order_number": attempt.order_number,
        "state": attempt.state,
        "result": result,
        "message": what,
    }
