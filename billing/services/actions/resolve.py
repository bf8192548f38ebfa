"""An operator resolves an attempt that waits for them (``needs_operator``).

It decides, from the gateway's order status asked right now, what the attempt was: charged
(DEPOSITED: recorded as paid, or flagged as a second charge to refund when the invoice is
already paid), not charged (no such order, or the order was declined: settled by the
dunning decision, and the invoice may be retried), or still undecided (refused: nothing
changes). It must never guess: without a status that settles the order, nothing is
written. Every resolution records its actor and reason.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from billing.domain.model import AttemptState, Category, Outcome
from billing.errors import ConflictError, NotFoundError
from billing.gateway.classify import classify_status
from billing.services.accounts import gateway_of
from billing.services.actions.order_actions import OrderActions
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.pipeline.attempt_rows import DECLINED_CATEGORIES, lock_attempt
from billing.services.pipeline.settlement import DECLINED_ORDER
from billing.storage.tables import ChargeAttempt, Invoice


class ResolveActions(OrderActions):
    """``resolve``: settle an attempt waiting for an operator after asking the gateway."""

    def resolve(self, attempt_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Ask the gateway for the attempt's order, then record what it says.

        DEPOSITED → paid (or a flagged second charge); no such order or declined → "checked:
        not charged", and the invoice may be retried; anything else → refused, unchanged."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        with self.db.transaction() as session:
            attempt = session.get(ChargeAttempt, attempt_id)
            if attempt is None:
                raise NotFoundError(f"attempt {attempt_id} does not exist")
            if attempt.state != AttemptState.NEEDS_OPERATOR:
                raise ConflictError(
                    f"attempt {attempt_id} is {attempt.state}, not waiting for an operator; "
                    "nothing to resolve"
                )
            order_number = attempt.order_number
            gateway = gateway_of(session, self.gateway, attempt.subscription_id)
        status = classify_status(gateway.order_status(order_number=order_number))
        if status.is_paid:
            return self._charged(attempt_id, status, actor, reason)
        declined = status.order_status == DECLINED_ORDER or (
            status.category in DECLINED_CATEGORIES and not status.order_not_found
        )
        if not (status.order_not_found or declined):
            raise ConflictError(
                f"attempt {attempt_id}: the gateway does not settle order {order_number} yet "
                f"({status.reason.replace('_', ' ')}); nothing changed, ask again later"
            )
        if status.order_not_found:
            status = Outcome(
                category=Category.TRANSIENT,
                reason="not_received",
                message="checked by an operator: the gateway has no such order; not charged",
                error_code=status.error_code,
            )
        elif status.category not in DECLINED_CATEGORIES:
            status = replace(status, category=Category.SOFT_DECLINE)
        return self._not_charged(attempt_id, status, actor, reason)

    def _charged(self, attempt_id: int, status: Outcome, actor: str, reason: str) -> dict[str, Any]:
        now = self.clock()
        result = self.settlement.recheck(attempt_id, status, now)
        if result != "paid_on_recheck":
            raise ConflictError(f"attempt {attempt_id} was settled meanwhile; nothing changed")
        with self.db.transaction() as session:
            attempt = session.get_one(ChargeAttempt, attempt_id)
            flagged = bool(attempt.needs_refund)
            what = (
                "checked: charged, but the invoice was already paid: a second charge to refund"
                if flagged
                else "checked: charged (DEPOSITED); recorded as paid"
            )
            self._audit(session, attempt, what, actor, reason)
            return _result(attempt, "second_charge" if flagged else "paid", what)

    def _not_charged(
        self, attempt_id: int, status: Outcome, actor: str, reason: str
    ) -> dict[str, Any]:
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None or attempt.state != AttemptState.NEEDS_OPERATOR:
                raise ConflictError(f"attempt {attempt_id} was settled meanwhile; nothing changed")
            decision = self.settlement.settle_resolved(session, attempt, status, now)
            invoice = session.get_one(Invoice, attempt.invoice_id)
            what = f"checked: not charged ({status.reason.replace('_', ' ')}); {decision.reason}"
            if invoice.next_attempt_at is not None:
                what = f"checked: not charged ({status.reason.replace('_', ' ')}); retried now"
            self._audit(session, attempt, what, actor, reason)
            return _result(attempt, "not_charged", what)

    def _audit(
        self, session: Session, attempt: ChargeAttempt, what: str, actor: str, reason: str
    ) -> None:
        now = self.clock()
        record_event(
            session,
            now,
            "attempt_resolved",
            what,
            subscription_id=attempt.subscription_id,
            invoice_id=attempt.invoice_id,
            attempt_id=attempt.id,
            from_state=AttemptState.NEEDS_OPERATOR.value,
            to_state=attempt.state,
            actor=actor,
        )
        record_event(
            session,
            now,
            "operator_reason",
            f"resolve attempt {attempt.id}: {reason}",
            subscription_id=attempt.subscription_id,
            actor=actor,
        )


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
