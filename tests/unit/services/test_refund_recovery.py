"""Refunds and reversals whose answer was lost (issue 8, item 14), and the banking day.

Stories: a refund that timed out is settled by the order's status, and no longer blocks
the rest of the refund; one that never reached the gateway is sent again under the same
externalRefundId (by the operator, or by repeating the request with its Idempotency-Key)
and refunds once; a reversal is judged on the gateway's banking day, not the UTC date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing.errors import ConfigurationError, ConflictError
from billing.services.idempotency import Stored
from billing.settings import load_settings
from tests.unit.services.test_operations import FAST_POLICY, World, _world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = _world(tmp_path, FAST_POLICY)
    w.gateway.report_refunds = True
    yield w
    w.db.dispose()


def test_a_timed_out_refund_is_settled_by_status_and_frees_the_rest(world: World) -> None:
    attempt_id = world.paid_attempt()
    refunds = world.app.actions.refunds
    world.gateway.refund_mode = "timeout"  # refunded at the bank; the answer is lost
    first = refunds.refund(attempt_id=attempt_id, amount=10000, actor=world.actor, reason="r")
    assert first.body["state"] == "unknown"
    world.gateway.refund_mode = "lost"  # this one never reaches the bank
    second = refunds.refund(attempt_id=attempt_id, actor=world.actor, reason="the rest")
    assert (second.body["state"], second.body["refundable_left"]) == ("unknown", 0)
    with pytest.raises(ConflictError, match="already refunded in full"):
        refunds.refund(attempt_id=attempt_id, amount=100, actor=world.actor, reason="more")

    settled = refunds.settle_unknown(actor=world.actor)
    assert [(r["id"], r["state"]) for r in settled] == [
        (first.body["id"], "succeeded"),
        (second.body["id"], "failed"),
    ]
    assert settled[-1]["refundable_left"] == 39900  # the lost one no longer blocks the rest
    world.gateway.refund_mode = "ok"
    rest = refunds.refund(attempt_id=attempt_id, actor=world.actor, reason="the rest again")
    assert (rest.body["state"], rest.body["amount"], rest.body["refundable_left"]) == (
        "succeeded",
        39900,
        0,
    )
    order_id = world.attempts(1)[0].gateway_order_id
    assert world.gateway.refunded[str(order_id)] == 49900  # never more than was paid
    assert [e.to_state for e in world.events(kind="refund_succeeded")] == ["succeeded"] * 2
    assert world.events(kind="refund_succeeded")[0].from_state == "unknown"


def test_a_refund_the_status_cannot_tell_about_stays_unknown(world: World) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.refund_mode = "timeout"
    refund = world.refund(attempt_id=attempt_id).body
    world.gateway.auth_ok = False  # status queries fail
    [row] = world.app.actions.refunds.settle_unknown(refund["id"], actor=world.actor)
    assert row["state"] == "unknown" and "still unknown" in row["note"]


def test_an_unknown_refund_is_sent_again_with_the_same_external_refund_id(world: World) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.refund_mode = "lost"
    refund = world.refund(attempt_id=attempt_id, amount=20000).body
    world.gateway.refund_mode = "ok"
    again = world.app.actions.refunds.retry_unknown(
        refund["id"], actor=world.actor, reason="the gateway timed out"
    )
    assert (again["id"], again["state"], again["refundable_left"]) == (
        refund["id"],
        "succeeded",
        29900,
    )
    [(_, _, first_id), (_, _, second_id)] = world.gateway.refund_calls
    assert first_id == second_id == refund["external_refund_id"]
    assert len(world.events(kind="refund_resent")) == 1
    with pytest.raises(ConflictError, match="succeeded, not unknown"):
        world.app.actions.refunds.retry_unknown(refund["id"], actor=world.actor, reason="r")


def test_a_repeat_with_the_same_key_resends_an_unknown_refund_and_refunds_once(
    world: World,
) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.refund_mode = "timeout"  # it happened; the answer was lost

    def ask() -> Stored:
        return world.refund(attempt_id=attempt_id, idempotency_key="k-7")

    first = ask()
    assert first.body["state"] == "unknown"
    world.gateway.refund_mode = "ok"
    again = ask()
    assert again.replayed and again.body["state"] == "succeeded"
    assert {call[2] for call in world.gateway.refund_calls} == {first.body["external_refund_id"]}
    order_id = world.attempts(1)[0].gateway_order_id
    assert world.gateway.refunded[str(order_id)] == 49900  # once, though sent twice
    third = ask()
    assert third.body["state"] == "succeeded" and len(world.gateway.refund_calls) == 2


def test_a_timed_out_reversal_is_settled_by_the_reversed_state_never_resent(
    world: World,
) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.reverse_mode = "timeout"
    reversal = world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="r")
    assert reversal["state"] == "unknown"
    with pytest.raises(ConflictError, match="never sent again"):
        world.app.actions.refunds.retry_unknown(reversal["id"], actor=world.actor, reason="r")
    with pytest.raises(ConflictError, match="billing refunds settle"):
        world.refund(attempt_id=attempt_id)
    [row] = world.app.actions.refunds.settle_unknown(reversal["id"], actor=world.actor)
    assert row["state"] == "succeeded"
    assert len(world.gateway.reverse_calls) == 1
    with pytest.raises(ConflictError, match="already reversed"):
        world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="r")


def test_a_lost_reversal_is_settled_as_not_done_and_may_be_asked_again(world: World) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.reverse_mode = "lost"
    reversal = world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="r")
    [row] = world.app.actions.refunds.settle_unknown(reversal["id"], actor=world.actor)
    assert row["state"] == "failed"  # the order is still DEPOSITED
    world.gateway.reverse_mode = "ok"
    done = world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="again")
    assert done["state"] == "succeeded"


# -- the banking day --------------------------------------------------------------------------


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("paid_at", "reverse_at", "allowed"),
    [
        # 01:00 Moscow Dec 2 (22:00 UTC Dec 1), reversed 04:00 Moscow Dec 2 (01:00 UTC Dec 2):
        # one banking day, two UTC dates
        (_utc(1, 22), _utc(2, 1), True),
        # 23:30 Moscow Dec 1 (20:30 UTC), reversed 01:00 Moscow Dec 2 (22:00 UTC Dec 1): the
        # next banking day, though still Dec 1 in UTC
        (_utc(1, 20, 30), _utc(1, 22), False),
        # 08:00 Moscow, reversed in the banking day's last minute (23:59 Moscow)
        (_utc(1, 5), _utc(1, 20, 59), True),
        # midnight in Moscow (21:00 UTC) ends it
        (_utc(1, 5), _utc(1, 21), False),
    ],
)
def test_a_reversal_is_possible_on_the_gateways_banking_day_of_the_payment(
    world: World, paid_at: datetime, reverse_at: datetime, allowed: bool
) -> None:
    world.clock.now = paid_at
    attempt_id = world.paid_attempt()
    world.clock.now = reverse_at
    if allowed:
        done = world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="r")
        assert done["state"] == "succeeded"
    else:
        with pytest.raises(ConflictError, match=r"Europe/Moscow banking day"):
            world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="r")
        assert world.gateway.reverse_calls == []


def test_the_banking_timezone_is_a_setting_and_a_bad_one_is_refused() -> None:
    assert load_settings().gateway_banking_timezone == "Europe/Moscow"
    assert load_settings(gateway_banking_timezone="UTC").gateway_banking_timezone == "UTC"
    with pytest.raises(ConfigurationError, match="BILLING_GATEWAY_BANKING_TIMEZONE"):
        load_settings(gateway_banking_timezone="Mars/Olympus")


def test_a_resend_that_cannot_be_sent_leaves_the_refund_unknown(world: World) -> None:
    """The first request refunded (its answer was lost); the resend finds the gateway
    down. "Not sent" this time says nothing about the first: never recorded as failed."""
    attempt_id = world.paid_attempt()
    world.gateway.refund_mode = "timeout"
    refund = world.refund(attempt_id=attempt_id).body
    world.gateway.refund_mode = "down"
    again = world.app.actions.refunds.retry_unknown(refund["id"], actor=world.actor, reason="r")
    assert again["state"] == "unknown" and again["refundable_left"] == 0
    assert "first request's outcome is still unknown" in again["message"]
    [row] = world.app.actions.refunds.settle_unknown(actor=world.actor)
    assert row["state"] == "succeeded"
