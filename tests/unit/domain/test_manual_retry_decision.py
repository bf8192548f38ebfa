"""``after_manual``: what a manual retry's outcome may change. Table-driven, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain.dunning import Action, decide
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.manual_retry import after_manual
from billing.domain.model import AttemptTrigger, Category, Outcome, SubscriptionStatus

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PLANNED = NOW + timedelta(days=2)
DEADLINE = NOW + timedelta(days=20)
PAST_DUE = SubscriptionStatus.PAST_DUE
WAITING = SubscriptionStatus.NEEDS_PAYMENT_METHOD


@pytest.mark.parametrize(
    ("category", "reason", "status", "planned", "cancel_at", "expected"),
    [
        # (action, next attempt, new status, cancel deadline)
        (Category.PAID, "paid", PAST_DUE, PLANNED, None, (Action.MARK_PAID, None, "active", None)),
        (Category.UNKNOWN, "read_timeout", PAST_DUE, PLANNED, None, (Action.RECONCILE,)),
        (Category.TRANSIENT, "system_error", PAST_DUE, PLANNED, None,
         (Action.KEEP_PLAN, PLANNED, None, None)),
        (Category.SOFT_DECLINE, "insufficient_funds", PAST_DUE, PLANNED, None,
         (Action.KEEP_PLAN, PLANNED, None, None)),
        (Category.HARD_DECLINE, "expired_card", WAITING, None, DEADLINE,
         (Action.KEEP_PLAN, None, None, DEADLINE)),
        (Category.MERCHANT_CONFIG, "access_denied", PAST_DUE, PLANNED, None,
         (Action.KEEP_PLAN, PLANNED, None, None)),
        (Category.REQUEST_REJECTED, "invalid_amount", PAST_DUE, PLANNED, None,
         (Action.KEEP_PLAN, PLANNED, None, None)),
        # a lost card is never charged again: the plan stops; a running deadline is kept
        (Category.DO_NOT_RETRY, "lost_card", PAST_DUE, PLANNED, None,
         (Action.NEEDS_PAYMENT_METHOD, None, "needs_payment_method", NOW + timedelta(days=30))),
        (Category.DO_NOT_RETRY, "lost_card", WAITING, None, DEADLINE,
         (Action.NEEDS_PAYMENT_METHOD, None, "needs_payment_method", DEADLINE)),
    ],
)  # fmt: skip
def test_a_manual_outcome_keeps_the_plan_unless_it_pays_or_the_card_is_lost(
    category: Category,
    reason: str,
    status: SubscriptionStatus,
    planned: datetime | None,
    cancel_at: datetime | None,
    expected: tuple[object, ...],
) -> None:
    outcome = Outcome(category=category, reason=reason)
    automatic = decide(DEFAULT_POLICY, [], outcome, NOW, trigger=AttemptTrigger.MANUAL)
    got = after_manual(automatic, outcome, planned_at=planned, status=status, cancel_at=cancel_at)
    shown = (got.action, got.at, got.subscription_status, got.cancel_at)
    assert shown[: len(expected)] == expected
    if got.action is Action.KEEP_PLAN:
        assert "manual retry not paid; the plan is unchanged" in got.reason
