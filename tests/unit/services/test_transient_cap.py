"""Temporary failures have a cap, and each card an attempt budget (issue 8, item 11).

One card answering "system error" got 2,119 charge calls in 90 days and stayed active.
Now a run of ``transient.max_attempts`` temporary failures (or ``give_up_after`` of
them) puts the invoice into dunning like a soft decline, and retries are pushed so the
card gets at most ``card_budget.max_attempts`` charges in any ``window``. Rate-limit
give-ups never reached the bank and count for neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.domain.dunning_policy import CardBudgetPolicy, TransientPolicy
from billing.domain.model import AttemptSummary, AttemptTrigger, Category, Outcome
from billing.domain.policy_file import load_policy, parse_policy
from billing.domain.retry_limits import cap_transient, next_allowed
from billing.errors import ConfigurationError
from billing.gateway.results import RATE_LIMITED, ConnectionFailed, GatewayResult, JsonReply
from tests.support.fakes import error_body
from tests.support.scripted_world import FAST_POLICY, ScriptedWorld, make_world

NOW = datetime(2026, 12, 1, tzinfo=UTC)
FAST = FAST_POLICY.read_text(encoding="utf-8")


def _policy(extra: str) -> str:
    """The fast policy with its [transient] table replaced and ``extra`` tables added."""
    head, _, tail = FAST.partition("[transient]")
    _, _, rest = tail.partition("[unknown]")
    return head + extra + "\n[unknown]" + rest


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ScriptedWorld]:
    text = _policy('[transient]\nbackoff = ["1s"]\nmax_attempts = 3\ngive_up_after = "1h"\n')
    w = make_world(tmp_path, parse_policy(text), outage_threshold=1000)
    yield w
    w.db.dispose()


def _system_error(*_: object) -> GatewayResult:
    return JsonReply(200, error_body("7", "System error"))


def test_a_card_answering_system_error_enters_dunning_instead_of_being_called_forever(
    capped: ScriptedWorld,
) -> None:
    capped.gateway.script = _system_error
    sub_id = capped.subscribe("approve-1")
    capped.tick()
    capped.tick(1)
    assert capped.sub(sub_id).status == "active"  # two temporary failures: retried soon
    capped.tick(1)
    assert capped.sub(sub_id).status == "past_due"
    third = capped.attempts(sub_id)[-1]
    assert (third.category, third.reason) == ("soft_decline", "transient_cap_reached")
    for _ in range(60):
        capped.tick(1)
    # The three dunning retries each end in three temporary failures, then the schedule
    # is used up: suspended, and canceled 5 s later (the fast policy's cancel_after).
    assert capped.sub(sub_id).status == "canceled"
    assert len(capped.gateway.payment_calls) == 12


def test_rate_limit_give_ups_do_not_count_toward_the_cap(capped: ScriptedWorld) -> None:
    capped.gateway.script = lambda *_: ConnectionFailed(
        detail="rate limit: no slot within 5s", reason=RATE_LIMITED
    )
    sub_id = capped.subscribe("approve-1")
    capped.tick()
    for _ in range(6):
        capped.tick(1)
    assert capped.sub(sub_id).status == "active"
    assert {a.category for a in capped.attempts(sub_id)} == {"transient"}


def test_the_card_budget_pushes_the_next_retry_to_when_the_window_allows_it(
    tmp_path: Path,
) -> None:
    text = _policy('[transient]\nbackoff = ["1s"]\n') + (
        '\n[card_budget]\nmax_attempts = 3\nwindow = "1h"\n'
    )
    world = make_world(tmp_path, parse_policy(text), outage_threshold=1000)
    try:
        sub_id = world.subscribe("insufficient-1")
        world.tick()
        world.tick(1)
        world.tick(1)
        first_sent = world.attempts(sub_id)[0].sent_at
        assert first_sent is not None
        [invoice] = world.invoices(sub_id)
        assert invoice.next_attempt_at == first_sent + timedelta(hours=1)
        for _ in range(20):
            world.tick(1)
        assert len(world.gateway.payment_calls) == 3  # nothing more within the hour
        world.tick(3600)
        assert len(world.gateway.payment_calls) == 4
    finally:
        world.db.dispose()


def _transient(at: datetime, counted: bool = True) -> AttemptSummary:
    return AttemptSummary(Category.TRANSIENT, AttemptTrigger.RETRY, at=at, counted=counted)


SYSTEM_ERROR = Outcome(Category.TRANSIENT, "system_error", error_code="7")


@pytest.mark.parametrize(
    ("earlier", "now", "capped"),
    [
        ([], NOW, False),
        ([_transient(NOW)], NOW + timedelta(minutes=1), False),
        ([_transient(NOW), _transient(NOW)], NOW + timedelta(minutes=2), True),
        ([_transient(NOW, counted=False)] * 5, NOW + timedelta(minutes=2), False),
        ([_transient(NOW)], NOW + timedelta(hours=1), True),
    ],
)
def test_the_cap_counts_a_run_of_temporary_failures_or_its_duration(
    earlier: list[AttemptSummary], now: datetime, capped: bool
) -> None:
    policy = TransientPolicy(max_attempts=3, give_up_after=timedelta(hours=1))
    outcome = cap_transient(policy, earlier, SYSTEM_ERROR, now)
    assert (outcome.category is Category.SOFT_DECLINE) is capped


def test_next_allowed_waits_for_the_oldest_attempt_to_leave_the_window() -> None:
    budget = CardBudgetPolicy(max_attempts=2, window=timedelta(days=30))
    sent = [NOW, NOW + timedelta(days=1)]
    assert next_allowed(sent, NOW + timedelta(days=2), budget) == NOW + timedelta(days=30)
    assert next_allowed(sent[:1], NOW + timedelta(days=2), budget) == NOW + timedelta(days=2)


def test_the_defaults_match_the_shipped_file_and_bad_values_are_refused() -> None:
    policy = load_policy(FAST_POLICY.parents[0] / "dunning.toml")
    assert (policy.transient.max_attempts, policy.transient.give_up_after) == (
        24,
        timedelta(days=3),
    )
    assert (policy.card_budget.max_attempts, policy.card_budget.window) == (
        20,
        timedelta(days=30),
    )
    with pytest.raises(ConfigurationError, match=r"transient\.max_attempts"):
        parse_policy("[transient]\nmax_attempts = 0\n")
    with pytest.raises(ConfigurationError, match=r"card_budget\.window"):
        parse_policy('[card_budget]\nwindow = "soon"\n')
