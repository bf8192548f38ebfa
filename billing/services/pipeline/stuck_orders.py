"""Stuck orders: an order still CREATED / PREREGISTERED / PENDING long after the charge was
sent is made final with decline.do, so the invoice can move on.

Called by the charger when a status query says an attempt's order is pending. The pure
decision (:func:`billing.domain.stuck_orders.should_decline`, thresholds from the policy's
``[stuck_orders]``) says whether decline.do is due; the time it is sent is stored on the
attempt before the call. Whatever decline.do answers, the order's status decides: DECLINED
by our decline → the attempt failed without money taken and the invoice is retried with a
new orderNumber (not a dunning step); DEPOSITED (paid meanwhile, decline refused) → paid;
still pending → asked again later. It never uses a new orderNumber before the status says
DECLINED, and never records "paid" without DEPOSITED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy import select

from billing.domain.dunning_policy import StuckOrderPolicy
from billing.domain.model import AttemptState, Category, Outcome
from billing.domain.stuck_orders import STUCK_ORDER_DECLINED, declined_by_us, should_decline
from billing.gateway.classify import classify_status
from billing.gateway.classify_orders import classify_order_call
from billing.gateway.port import DeclineRequest, Gateway
from billing.services.accounts import gateway_of
from billing.services.audit import record_event
from billing.services.pipeline.attempt_rows import lock_attempt
from billing.services.pipeline.order_status import settles
from billing.services.ports import Clock, system_clock
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt

log = logging.getLogger("billing.charging")


@dataclass(frozen=True)
class _Due:
    order_id: str | None
    order_number: str
    #: The gateway of the attempt's merchant account, found in the claiming transaction.
    gateway: Gateway


class StuckOrders:
    """Declines an attempt's order once it is stuck (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        gateway: Gateway,
        policy: StuckOrderPolicy,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.policy = policy
        self.clock = clock

    def follow_up(
        self, attempt_id: int, status: Outcome, expected: set[AttemptState]
    ) -> Outcome | None:
        """``None``: nothing to do yet (the charger records an unknown outcome, as before);
        an outcome: the status read after decline.do, for the charger to settle with."""
        due = self._claim(attempt_id, status, expected)
        if due is None:
            return None
        request = DeclineRequest(order_id=due.order_id, order_number=due.order_number)
        gateway = due.gateway
        answer = classify_order_call(gateway.decline(request))
        log.warning("attempt %s: stuck order; decline.do %s", attempt_id, answer.describe)
        after = classify_status(gateway.order_status(order_number=due.order_number))
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None:
                return None
            record_event(
                session,
                now,
                "decline_answered",
                f"decline.do {answer.describe}; the order is now {after.reason.replace('_', ' ')}",
                subscription_id=attempt.subscription_id,
                invoice_id=attempt.invoice_id,
                attempt_id=attempt.id,
            )
            ours = declined_by_us(
                declined_at=attempt.decline_sent_at,
                order_status=after.order_status,
                action=after.action_code,
            )
        if ours and not after.order_not_found:
            return _ours(after)
        return after if settles(after) else None

    def declined_by_our_decline(self, attempt_id: int, status: Outcome) -> Outcome | None:
        """A DECLINED status read later (the worker that sent decline.do died before it
        settled, or another check came first): if our decline.do made it final, the same
        outcome as right after the decline, never the bank's verdict on the card (which
        would hold the subscription for an operator as "declined by the merchant")."""
        with self.db.transaction() as session:  # a plain read: no row lock is needed
            declined_at = session.scalar(
                select(ChargeAttempt.decline_sent_at).where(ChargeAttempt.id == attempt_id)
            )
        if declined_by_us(
            declined_at=declined_at, order_status=status.order_status, action=status.action_code
        ):
            return _ours(status)
        return None

    def _claim(self, attempt_id: int, status: Outcome, expected: set[AttemptState]) -> _Due | None:
        now = self.clock()
        with self.db.transaction() as session:
            attempt = lock_attempt(session, attempt_id)
            if attempt is None or AttemptState(attempt.state) not in expected:
                return None
            if not should_decline(
                decline_after=self.policy.decline_after,
                sent_at=attempt.sent_at,
                declined_at=attempt.decline_sent_at,
                now=now,
            ):
                return None
            attempt.decline_sent_at = attempt.updated_at = now
            attempt.gateway_order_id = status.order_id or attempt.gateway_order_id
            record_event(
                session,
                now,
                "decline_sent",
                f"order {attempt.order_number} is still not final long after it was sent; "
                "declining it with decline.do",
                subscription_id=attempt.subscription_id,
                invoice_id=attempt.invoice_id,
                attempt_id=attempt.id,
            )
            gateway = gateway_of(session, self.gateway, attempt.subscription_id)
            return _Due(attempt.gateway_order_id, attempt.order_number, gateway)


def _ours(status: Outcome) -> Outcome:
    """The outcome of an order our decline.do made final: retried with a new order."""
    return replace(
        status,
        category=Category.TRANSIENT,
        reason=STUCK_ORDER_DECLINED,
        message=(
            "the order stayed unpaid and undeclined; declined with decline.do and "
            "confirmed DECLINED: retried with a new order"
        ),
    )
