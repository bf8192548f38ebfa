"""Row-level steps of settling one attempt: lock it, write its outcome, move its
subscription's dunning status (forward only, :func:`billing.domain.collection.dunning_move`).

Always on the caller's session and under the caller's locks; nothing here commits, calls
the gateway or decides what comes next (that is the dunning decision's job).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from billing.domain.collection import dunning_move
from billing.domain.dunning import Action, Decision
from billing.domain.model import (
    AttemptState,
    Category,
    Outcome,
    SubscriptionStatus,
)
from billing.observability.logs import bind
from billing.services.audit import record_event
from billing.services.lifecycle import change_status
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

DECLINED_CATEGORIES = frozenset(
    {Category.SOFT_DECLINE, Category.HARD_DECLINE, Category.DO_NOT_RETRY}
)
#: Statuses in which an open invoice waits for a new card rather than a planned retry.
WAITING_FOR_CARD = frozenset(
    {SubscriptionStatus.SUSPENDED.value, SubscriptionStatus.NEEDS_PAYMENT_METHOD.value}
)


def move_subscription(
    session: Session,
    subscription: Subscription,
    invoice: Invoice,
    decision: Decision,
    now: datetime,
) -> None:
    """Apply the decision's status to the subscription, forward only
    (billing.domain.collection.dunning_move); an invoice of a subscription that waits for a
    card plans nothing (a new card or the cancel date comes next)."""
    frozen = {SubscriptionStatus.CANCELED.value, SubscriptionStatus.PAUSED.value}
    proposed = decision.subscription_status
    if proposed is not None and subscription.status not in frozen:
        current = SubscriptionStatus(subscription.status)
        status, cancel_at = dunning_move(
            current, subscription.cancel_at, proposed, decision.cancel_at
        )
        if status is not current:
            change_status(
                session, subscription, status, now, decision.reason, invoice_id=invoice.id
            )
        elif status is not proposed:
            record_event(
                session,
                now,
                "dunning_kept",
                f"subscription stays {current.value} (dunning only moves forward); "
                f"not {proposed.value} because of invoice {invoice.id}",
                subscription_id=subscription.id,
                invoice_id=invoice.id,
                from_state=current.value,
                to_state=current.value,
            )
        subscription.cancel_at = cancel_at
        subscription.updated_at = now
    if subscription.status in WAITING_FOR_CARD:
        invoice.next_attempt_at = None


def lock_attempt(session: Session, attempt_id: int) -> ChargeAttempt | None:
    """The attempt, locked; its ids join the logging context of the charge or check."""
    attempt = session.get(ChargeAttempt, attempt_id, with_for_update=True, populate_existing=True)
    if attempt is not None:
        bind(
            subscription_id=attempt.subscription_id,
            invoice_id=attempt.invoice_id,
            order_number=attempt.order_number,
        )
    return attempt


def record_outcome(
    attempt: ChargeAttempt, outcome: Outcome, decision: Decision, now: datetime
) -> None:
    for name, value in outcome_columns(attempt.gateway_order_id, outcome, decision, now).items():
        setattr(attempt, name, value)


def outcome_columns(
    gateway_order_id: str | None, outcome: Outcome, decision: Decision, now: datetime
) -> dict[str, Any]:
    """The attempt's columns after ``outcome`` and its ``decision``: the one mapping the
    single (ORM) and the batch (bulk) settlements both write."""
    columns: dict[str, Any] = {
        "category": outcome.category.value,
        "reason": outcome.reason[:64],
        "message": (outcome.message or decision.reason)[:512],
        "error_code": outcome.error_code,
        "action_code": outcome.action_code,
        "http_status": outcome.http_status,
        "gateway_order_id": outcome.order_id or gateway_order_id,
        "updated_at": now,
    }
    if decision.action is Action.RECONCILE:
        return columns | {"state": AttemptState.UNKNOWN.value, "next_check_at": decision.at}
    if decision.action is Action.NEEDS_OPERATOR:
        state = AttemptState.NEEDS_OPERATOR
    elif outcome.category is Category.PAID:
        state = AttemptState.PAID
    elif outcome.category in DECLINED_CATEGORIES:
        state = AttemptState.DECLINED
    else:
        state = AttemptState.FAILED
    return columns | {"state": state.value, "next_check_at": None, "finished_at": now}
