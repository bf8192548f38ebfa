"""Properties of the dunning decision, for any history, outcome and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.dunning import Action, decide
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.model import AttemptSummary, AttemptTrigger, Category, Outcome
from billing.domain.policy_file import load_policy

FAST = load_policy(Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml")

categories = st.sampled_from(list(Category))
triggers = st.sampled_from(list(AttemptTrigger))
summaries = st.builds(
    AttemptSummary,
    category=categories,
    trigger=triggers,
    binding_version=st.integers(1, 3),
    confirm_before_decline=st.booleans(),
)
outcomes = st.builds(
    Outcome,
    category=categories,
    reason=st.sampled_from(["insufficient_funds", "binding_not_found", "system_error", "x"]),
    confirm_before_decline=st.booleans(),
    order_not_found=st.booleans(),
)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(
    policy=st.sampled_from([DEFAULT_POLICY, FAST]),
    history=st.lists(summaries, max_size=12),
    outcome=outcomes,
    now=moments,
    trigger=triggers,
    binding_version=st.integers(1, 3),
    checks=st.integers(0, 50),
    unknown_for=st.one_of(st.none(), st.timedeltas(timedelta(0), timedelta(days=10))),
)
def test_any_decision_is_consistent(
    policy: object,
    history: list[AttemptSummary],
    outcome: Outcome,
    now: datetime,
    trigger: AttemptTrigger,
    binding_version: int,
    checks: int,
    unknown_for: timedelta | None,
) -> None:
    decision = decide(
        policy,  # type: ignore[arg-type]
        history,
        outcome,
        now,
        binding_version=binding_version,
        trigger=trigger,
        first_unknown_at=None if unknown_for is None else now - unknown_for,
        checks_so_far=checks,
    )
    # Nothing is "paid" unless the outcome says the money was taken.
    assert (decision.action is Action.MARK_PAID) == (outcome.category is Category.PAID)
    # Only a soft decline uses up a dunning step, and never a manual one.
    if decision.counts_as_dunning:
        assert outcome.category is Category.SOFT_DECLINE
        assert trigger is not AttemptTrigger.MANUAL
    # The customer is never blamed for our configuration or the gateway's outage.
    if outcome.category in (Category.MERCHANT_CONFIG, Category.TRANSIENT, Category.UNKNOWN):
        assert decision.subscription_status is None
    # Whatever comes next comes later, never in the past.
    if decision.at is not None:
        assert decision.at >= now
    if decision.action in (Action.RETRY, Action.RECONCILE, Action.PAUSE_CHARGING):
        assert decision.at is not None
    if decision.cancel_at is not None:
        assert decision.cancel_at > now
