"""The pure dunning decision: every category, every step and the end of every schedule."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from billing.domain.dunning import (
    Action,
    Decision,
    decide,
    describe_schedule,
    format_time,
    next_retry_after_new_binding,
)
from billing.domain.dunning_policy import (
    DEFAULT_POLICY,
    DoNotRetryAction,
    DoNotRetryPolicy,
    DunningPolicy,
    ExhaustedAction,
    SoftDeclinePolicy,
)
from billing.domain.model import (
    AttemptSummary,
    AttemptTrigger,
    Category,
    Outcome,
    SubscriptionStatus,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)

SCHEDULED = AttemptTrigger.SCHEDULED
RETRY = AttemptTrigger.RETRY
MANUAL = AttemptTrigger.MANUAL

CANCEL_POLICY = replace(
    DEFAULT_POLICY,
    soft_decline=replace(DEFAULT_POLICY.soft_decline, on_exhausted=ExhaustedAction.CANCEL),
)
NEVER_CANCEL_POLICY = DunningPolicy(
    soft_decline=SoftDeclinePolicy(cancel_after=None),
    hard_decline=replace(DEFAULT_POLICY.hard_decline, cancel_after=None),
)
CANCEL_FRAUD_POLICY = replace(
    DEFAULT_POLICY, do_not_retry=DoNotRetryPolicy(action=DoNotRetryAction.CANCEL)
)


def attempt(
    category: Category,
    trigger: AttemptTrigger = RETRY,
    *,
    binding_version: int = 1,
    confirm: bool = False,
) -> AttemptSummary:
    return AttemptSummary(
        category=category,
        trigger=trigger,
        binding_version=binding_version,
        confirm_before_decline=confirm,
    )


def soft(trigger: AttemptTrigger = RETRY) -> AttemptSummary:
    return attempt(Category.SOFT_DECLINE, trigger)


def first_soft() -> AttemptSummary:
    return attempt(Category.SOFT_DECLINE, SCHEDULED)


def outcome(category: Category, reason: str = "", *, confirm: bool = False) -> Outcome:
    return Outcome(category=category, reason=reason, confirm_before_decline=confirm)


PAID = outcome(Category.PAID, "approved")
INSUFFICIENT = outcome(Category.SOFT_DECLINE, "insufficient_funds")
EXPIRED = outcome(Category.HARD_DECLINE, "card_expired")
NOT_FOUND = outcome(Category.HARD_DECLINE, "binding_not_found", confirm=True)
STOLEN = outcome(Category.DO_NOT_RETRY, "stolen_card")
SYSTEM_ERROR = outcome(Category.TRANSIENT, "system_error")
TIMEOUT = outcome(Category.UNKNOWN, "read_timeout")
AUTH_ERROR = outcome(Category.MERCHANT_CONFIG, "authentication_error")


@dataclass(frozen=True)
class Case:
    attempts: list[AttemptSummary]
    outcome: Outcome
    action: Action
    at: timedelta | None  # after NOW
    status: SubscriptionStatus | None
    counts: bool = False
    cancel_at: timedelta | None = None  # after NOW
    reason: str = ""  # a fragment of the reason
    policy: DunningPolicy = DEFAULT_POLICY
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    # -- paid
    pytest.param(
        Case([], PAID, Action.MARK_PAID, None, SubscriptionStatus.ACTIVE, reason="paid"),
        id="paid-first-try",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), attempt(Category.TRANSIENT)],
            PAID,
            Action.MARK_PAID,
            None,
            SubscriptionStatus.ACTIVE,
        ),
        id="paid-after-dunning",
    ),
    # -- soft decline: every step of the schedule
    pytest.param(
        Case(
            [],
            INSUFFICIENT,
            Action.RETRY,
            1 * D,
            SubscriptionStatus.PAST_DUE,
            counts=True,
            reason="insufficient funds; retry 1 of 4 at 2026-12-02 09:00 UTC",
        ),
        id="soft-step-1",
    ),
    pytest.param(
        Case(
            [first_soft()],
            INSUFFICIENT,
            Action.RETRY,
            3 * D,
            SubscriptionStatus.PAST_DUE,
            counts=True,
            reason="retry 2 of 4 at 2026-12-04 09:00 UTC",
        ),
        id="soft-step-2",
    ),
    pytest.param(
        Case(
            [first_soft(), soft()],
            INSUFFICIENT,
            Action.RETRY,
            5 * D,
            SubscriptionStatus.PAST_DUE,
            counts=True,
            reason="retry 3 of 4",
        ),
        id="soft-step-3",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), soft()],
            INSUFFICIENT,
            Action.RETRY,
            7 * D,
            SubscriptionStatus.PAST_DUE,
            counts=True,
            reason="retry 4 of 4",
        ),
        id="soft-step-4-last",
    ),
    pytest.param(
        Case(
            [first_soft(), attempt(Category.TRANSIENT), soft(), attempt(Category.UNKNOWN)],
            INSUFFICIENT,
            Action.RETRY,
            5 * D,
            SubscriptionStatus.PAST_DUE,
            counts=True,
            reason="retry 3 of 4",
        ),
        id="soft-other-categories-not-counted",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), soft(), soft()],
            INSUFFICIENT,
            Action.SUSPEND,
            14 * D,
            SubscriptionStatus.SUSPENDED,
            counts=True,
            cancel_at=14 * D,
            reason="all 4 retries declined; subscription suspended, canceled at 2026-12-15",
        ),
        id="soft-exhausted-suspend",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), soft(), soft()],
            INSUFFICIENT,
            Action.SUSPEND,
            None,
            SubscriptionStatus.SUSPENDED,
            counts=True,
            cancel_at=None,
            reason="never canceled automatically",
            policy=NEVER_CANCEL_POLICY,
        ),
        id="soft-exhausted-suspend-never-cancel",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), soft(), soft()],
            INSUFFICIENT,
            Action.CANCEL,
            None,
            SubscriptionStatus.CANCELED,
            counts=True,
            reason="subscription canceled",
            policy=CANCEL_POLICY,
        ),
        id="soft-exhausted-cancel",
    ),
    # -- soft decline: manual retries use up no step
    pytest.param(
        Case(
            [first_soft(), soft(MANUAL), soft(MANUAL), soft(MANUAL)],
            INSUFFICIENT,
            Action.RETRY,
            3 * D,
            SubscriptionStatus.PAST_DUE,
            counts=True,
            reason="retry 2 of 4",
        ),
        id="soft-earlier-manual-not-counted",
    ),
    pytest.param(
        Case(
            [first_soft(), soft()],
            INSUFFICIENT,
            Action.RETRY,
            3 * D,
            SubscriptionStatus.PAST_DUE,
            counts=False,
            reason="manual retry declined (not a dunning step); retry 2 of 4",
            kwargs={"trigger": MANUAL},
        ),
        id="soft-manual-keeps-current-step",
    ),
    pytest.param(
        Case(
            [attempt(Category.TRANSIENT, SCHEDULED)],
            INSUFFICIENT,
            Action.RETRY,
            1 * D,
            SubscriptionStatus.PAST_DUE,
            counts=False,
            reason="next charge at 2026-12-02 09:00 UTC",
            kwargs={"trigger": MANUAL},
        ),
        id="soft-manual-before-any-step",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), soft(), soft()],
            INSUFFICIENT,
            Action.RETRY,
            7 * D,
            SubscriptionStatus.PAST_DUE,
            counts=False,
            reason="retry 4 of 4",
            kwargs={"trigger": MANUAL},
        ),
        id="soft-manual-before-last-step",
    ),
    pytest.param(
        Case(
            [first_soft(), soft(), soft(), soft(), soft()],
            INSUFFICIENT,
            Action.SUSPEND,
            None,
            None,
            counts=False,
            reason="already used up",
            kwargs={"trigger": MANUAL},
        ),
        id="soft-manual-after-exhausted-changes-nothing",
    ),
    # -- hard decline
    pytest.param(
        Case(
            [],
            EXPIRED,
            Action.NEEDS_PAYMENT_METHOD,
            None,
            SubscriptionStatus.NEEDS_PAYMENT_METHOD,
            cancel_at=30 * D,
            reason="card expired; a new card is needed",
        ),
        id="hard-needs-payment-method",
    ),
    pytest.param(
        Case(
            [],
            EXPIRED,
            Action.NEEDS_PAYMENT_METHOD,
            None,
            SubscriptionStatus.NEEDS_PAYMENT_METHOD,
            cancel_at=None,
            reason="never canceled automatically",
            policy=NEVER_CANCEL_POLICY,
        ),
        id="hard-needs-payment-method-never-cancel",
    ),
    pytest.param(
        Case(
            [first_soft()],
            NOT_FOUND,
            Action.RETRY,
            1 * H,
            None,
            reason="binding not found; confirming once at 2026-12-01 10:00 UTC",
        ),
        id="hard-binding-not-found-confirms-once",
    ),
    pytest.param(
        Case(
            [attempt(Category.HARD_DECLINE, SCHEDULED, confirm=True)],
            NOT_FOUND,
            Action.NEEDS_PAYMENT_METHOD,
            None,
            SubscriptionStatus.NEEDS_PAYMENT_METHOD,
            cancel_at=30 * D,
        ),
        id="hard-binding-not-found-confirmed",
    ),
    pytest.param(
        Case(
            [attempt(Category.HARD_DECLINE, SCHEDULED, binding_version=1, confirm=True)],
            NOT_FOUND,
            Action.RETRY,
            1 * H,
            None,
            reason="confirming once",
            kwargs={"binding_version": 2},
        ),
        id="hard-confirm-resets-with-new-binding",
    ),
    pytest.param(
        Case(
            [
                attempt(Category.HARD_DECLINE, SCHEDULED, binding_version=1, confirm=True),
                attempt(Category.HARD_DECLINE, RETRY, binding_version=2, confirm=True),
            ],
            NOT_FOUND,
            Action.NEEDS_PAYMENT_METHOD,
            None,
            SubscriptionStatus.NEEDS_PAYMENT_METHOD,
            cancel_at=30 * D,
            kwargs={"binding_version": 2},
        ),
        id="hard-confirmed-for-new-binding",
    ),
    pytest.param(
        Case(
            [attempt(Category.HARD_DECLINE, SCHEDULED)],
            NOT_FOUND,
            Action.RETRY,
            1 * H,
            None,
        ),
        id="hard-earlier-plain-hard-decline-is-no-confirmation",
    ),
    # -- do not retry
    pytest.param(
        Case(
            [],
            STOLEN,
            Action.NEEDS_PAYMENT_METHOD,
            None,
            SubscriptionStatus.NEEDS_PAYMENT_METHOD,
            cancel_at=30 * D,
            reason="stolen card; this card is never retried",
        ),
        id="do-not-retry-needs-payment-method",
    ),
    pytest.param(
        Case(
            [first_soft()],
            STOLEN,
            Action.CANCEL,
            None,
            SubscriptionStatus.CANCELED,
            reason="never retried; subscription canceled",
            policy=CANCEL_FRAUD_POLICY,
        ),
        id="do-not-retry-cancel",
    ),
    # -- transient: backoff and cap
    pytest.param(
        Case([], SYSTEM_ERROR, Action.RETRY, 1 * M, None, reason="not a dunning step"),
        id="transient-1",
    ),
    pytest.param(
        Case([attempt(Category.TRANSIENT)], SYSTEM_ERROR, Action.RETRY, 5 * M, None),
        id="transient-2",
    ),
    pytest.param(
        Case([attempt(Category.TRANSIENT)] * 2, SYSTEM_ERROR, Action.RETRY, 30 * M, None),
        id="transient-3",
    ),
    pytest.param(
        Case([attempt(Category.TRANSIENT)] * 3, SYSTEM_ERROR, Action.RETRY, 2 * H, None),
        id="transient-4-last",
    ),
    pytest.param(
        Case([attempt(Category.TRANSIENT)] * 9, SYSTEM_ERROR, Action.RETRY, 2 * H, None),
        id="transient-capped",
    ),
    pytest.param(
        Case(
            [attempt(Category.TRANSIENT)] * 3 + [first_soft()],
            SYSTEM_ERROR,
            Action.RETRY,
            1 * M,
            None,
        ),
        id="transient-streak-broken-by-decline",
    ),
    pytest.param(
        Case(
            [first_soft(), attempt(Category.TRANSIENT)],
            SYSTEM_ERROR,
            Action.RETRY,
            5 * M,
            None,
            counts=False,
        ),
        id="transient-during-dunning-keeps-status",
    ),
    # -- unknown: reconcile backoff, cap, give up
    pytest.param(
        Case([], TIMEOUT, Action.RECONCILE, 10 * S, None, reason="read timeout; checking"),
        id="unknown-check-1",
    ),
    pytest.param(
        Case([], TIMEOUT, Action.RECONCILE, 1 * M, None, kwargs={"checks_so_far": 1}),
        id="unknown-check-2",
    ),
    pytest.param(
        Case([], TIMEOUT, Action.RECONCILE, 2 * H, None, kwargs={"checks_so_far": 4}),
        id="unknown-check-5-last",
    ),
    pytest.param(
        Case([], TIMEOUT, Action.RECONCILE, 2 * H, None, kwargs={"checks_so_far": 50}),
        id="unknown-capped",
    ),
    pytest.param(
        Case(
            [],
            TIMEOUT,
            Action.RECONCILE,
            2 * H,
            None,
            kwargs={"checks_so_far": 50, "first_unknown_at": NOW - 2 * D},
        ),
        id="unknown-before-give-up",
    ),
    pytest.param(
        Case(
            [],
            TIMEOUT,
            Action.RECONCILE,
            30 * M,
            None,
            kwargs={"checks_so_far": 50, "first_unknown_at": NOW - 3 * D + 30 * M},
        ),
        id="unknown-last-check-at-give-up-time",
    ),
    pytest.param(
        Case(
            [],
            TIMEOUT,
            Action.NEEDS_OPERATOR,
            None,
            None,
            reason="an operator must check the order",
            kwargs={"checks_so_far": 50, "first_unknown_at": NOW - 3 * D},
        ),
        id="unknown-give-up-exactly",
    ),
    pytest.param(
        Case(
            [],
            TIMEOUT,
            Action.NEEDS_OPERATOR,
            None,
            None,
            kwargs={"first_unknown_at": NOW - 10 * D},
        ),
        id="unknown-give-up-late",
    ),
    # -- merchant configuration: pause backoff and cap
    pytest.param(
        Case(
            [],
            AUTH_ERROR,
            Action.PAUSE_CHARGING,
            1 * M,
            None,
            reason="charging paused until 2026-12-01 09:01 UTC; the customer is not at fault",
        ),
        id="merchant-pause-1",
    ),
    pytest.param(
        Case([attempt(Category.MERCHANT_CONFIG)], AUTH_ERROR, Action.PAUSE_CHARGING, 5 * M, None),
        id="merchant-pause-2",
    ),
    pytest.param(
        Case(
            [attempt(Category.MERCHANT_CONFIG)] * 3, AUTH_ERROR, Action.PAUSE_CHARGING, 1 * H, None
        ),
        id="merchant-pause-4-last",
    ),
    pytest.param(
        Case(
            [first_soft()] + [attempt(Category.MERCHANT_CONFIG)] * 7,
            AUTH_ERROR,
            Action.PAUSE_CHARGING,
            1 * H,
            None,
        ),
        id="merchant-pause-capped",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_decide(case: Case) -> None:
    decision = decide(case.policy, case.attempts, case.outcome, NOW, **case.kwargs)
    assert decision.action is case.action
    assert decision.at == (None if case.at is None else NOW + case.at)
    assert decision.subscription_status is case.status
    assert decision.counts_as_dunning is case.counts
    assert decision.cancel_at == (None if case.cancel_at is None else NOW + case.cancel_at)
    assert case.reason in decision.reason
    assert decision.reason and "\n" not in decision.reason


def test_walk_through_the_default_schedule() -> None:
    """Decline at every retry: 1d, 3d, 5d, 7d after each decline, then suspension."""
    history: list[AttemptSummary] = []
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    expected_retries = [
        datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
        datetime(2026, 12, 10, 9, 0, tzinfo=UTC),
        datetime(2026, 12, 17, 9, 0, tzinfo=UTC),
    ]
    trigger = SCHEDULED
    for step, expected in enumerate(expected_retries, start=1):
        decision = decide(DEFAULT_POLICY, history, INSUFFICIENT, now)
        assert decision == Decision(
            Action.RETRY,
            expected,
            SubscriptionStatus.PAST_DUE,
            counts_as_dunning=True,
            reason=f"insufficient funds; retry {step} of 4 at {format_time(expected)}",
        )
        history.append(AttemptSummary(Category.SOFT_DECLINE, trigger))
        trigger = RETRY
        assert decision.at is not None
        now = decision.at

    final = decide(DEFAULT_POLICY, history, INSUFFICIENT, now)
    assert final.action is Action.SUSPEND
    assert final.subscription_status is SubscriptionStatus.SUSPENDED
    assert final.counts_as_dunning is True
    assert now == datetime(2026, 12, 17, 9, 0, tzinfo=UTC)
    assert final.cancel_at == datetime(2026, 12, 31, 9, 0, tzinfo=UTC)

    plan = describe_schedule(DEFAULT_POLICY, datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    assert [moment for moment, _ in plan] == [*expected_retries, now, final.cancel_at]


def test_walk_through_the_fast_policy_with_a_manual_retry_in_between() -> None:
    fast = DunningPolicy(soft_decline=SoftDeclinePolicy(retry_after=(S, S, S), cancel_after=5 * S))
    history = [first_soft(), soft(MANUAL), soft(), soft(MANUAL), soft()]
    decision = decide(fast, history, INSUFFICIENT, NOW)
    assert decision.action is Action.SUSPEND
    assert decision.cancel_at == NOW + 5 * S
    # One fewer counted decline: the last retry is still due.
    decision = decide(fast, history[:-1], INSUFFICIENT, NOW)
    assert decision.action is Action.RETRY
    assert decision.reason.endswith("retry 3 of 3 at 2026-12-01 09:00:01 UTC")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: decide(DEFAULT_POLICY, [], PAID, datetime(2026, 12, 1)), id="decide"),
        pytest.param(
            lambda: decide(
                DEFAULT_POLICY, [], TIMEOUT, NOW, first_unknown_at=datetime(2026, 12, 1)
            ),
            id="first-unknown-at",
        ),
        pytest.param(lambda: next_retry_after_new_binding(datetime(2026, 12, 1)), id="new-binding"),
        pytest.param(
            lambda: describe_schedule(DEFAULT_POLICY, datetime(2026, 12, 1)), id="describe"
        ),
    ],
)
def test_naive_datetime_rejected(call: Any) -> None:
    with pytest.raises(ValueError, match="aware"):
        call()


def test_other_timezones_are_converted_to_utc() -> None:
    moscow = timezone(timedelta(hours=3))
    decision = decide(DEFAULT_POLICY, [], INSUFFICIENT, datetime(2026, 12, 1, 12, 0, tzinfo=moscow))
    assert decision.at == NOW + D
    assert decision.at is not None and decision.at.tzinfo is UTC
    assert "2026-12-02 09:00 UTC" in decision.reason


def test_new_binding_retries_at_once() -> None:
    decision = next_retry_after_new_binding(NOW)
    assert decision.action is Action.RETRY
    assert decision.at == NOW
    assert decision.subscription_status is SubscriptionStatus.PAST_DUE
    assert decision.counts_as_dunning is False
    assert decision.cancel_at is None


@pytest.mark.parametrize(
    ("policy", "labels"),
    [
        pytest.param(
            DEFAULT_POLICY,
            [
                "retry 1 of 4 at 2026-12-02 09:00 UTC",
                "retry 2 of 4 at 2026-12-05 09:00 UTC",
                "retry 3 of 4 at 2026-12-10 09:00 UTC",
                "retry 4 of 4 at 2026-12-17 09:00 UTC",
                "suspended at 2026-12-17 09:00 UTC",
                "canceled at 2026-12-31 09:00 UTC",
            ],
            id="default",
        ),
        pytest.param(
            CANCEL_POLICY,
            [
                "retry 1 of 4 at 2026-12-02 09:00 UTC",
                "retry 2 of 4 at 2026-12-05 09:00 UTC",
                "retry 3 of 4 at 2026-12-10 09:00 UTC",
                "retry 4 of 4 at 2026-12-17 09:00 UTC",
                "canceled at 2026-12-17 09:00 UTC",
            ],
            id="cancel-on-exhausted",
        ),
        pytest.param(
            NEVER_CANCEL_POLICY,
            [
                "retry 1 of 4 at 2026-12-02 09:00 UTC",
                "retry 2 of 4 at 2026-12-05 09:00 UTC",
                "retry 3 of 4 at 2026-12-10 09:00 UTC",
                "retry 4 of 4 at 2026-12-17 09:00 UTC",
                "suspended at 2026-12-17 09:00 UTC",
            ],
            id="suspend-never-cancel",
        ),
    ],
)
def test_describe_schedule(policy: DunningPolicy, labels: list[str]) -> None:
    plan = describe_schedule(policy, NOW)
    assert [label for _, label in plan] == labels
    moments = [moment for moment, _ in plan]
    assert moments == sorted(moments)


def test_format_time_shows_seconds_only_when_needed() -> None:
    assert format_time(NOW) == "2026-12-01 09:00 UTC"
    assert format_time(NOW + 5 * S) == "2026-12-01 09:00:05 UTC"
