"""The charging pipeline's use cases on an embedded SQLite database with a fake gateway.

Each test tells a story a billing operator would recognise: a charge, a redelivery,
a timeout after charging, a decline walked through dunning, a configuration error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing.domain.dunning_policy import CatchUpMode, CatchUpPolicy
from billing.domain.subscription import NewSubscription
from billing.errors import ConflictError, ValidationError
from billing.storage.tables import ChargeAttempt, Event, Subscription
from tests.support.world import ServiceWorld, sqlite_url

World = ServiceWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World.fast(
        sqlite_url(tmp_path),
        circuit_outage_threshold=3,
        scheduler_batch_size=7,
        requeue_after=60,
    ) as w:
        yield w


def test_a_due_subscription_is_charged_once_and_moves_to_its_next_period(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    world.tick()
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    assert len(world.gateway.deposited()) == 1
    sub = world.sub(sub_id)
    assert sub.status == "active"
    assert sub.next_charge_at is not None and sub.next_charge_at > world.clock()
    world.tick(60)  # nothing new is due within the month
    assert len(world.gateway.payment_calls) == 1


def test_a_redelivered_message_for_a_paid_attempt_does_nothing(world: World) -> None:
    world.subscribe("approve-1")
    world.scheduler.run_pass()
    [attempt_id] = world.dispatcher.charges
    world.work()
    assert world.charger.charge(attempt_id) == "already_final"
    assert len(world.gateway.payment_calls) == 1


def test_timeout_after_charging_is_settled_by_status_and_never_resent(world: World) -> None:
    sub_id = world.subscribe("timeout-1")
    world.scheduler.run_pass()
    [attempt_id] = world.dispatcher.charges
    world.work()
    world.dispatcher.charges.append(attempt_id)  # the same message delivered again
    world.work()
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    assert world.gateway.payment_calls == [world.attempts(sub_id)[0].order_number]
    assert len(world.gateway.deposited()) == 1


def test_worker_killed_after_the_gateway_answered_is_reconciled_not_recharged(
    world: World,
) -> None:
    sub_id = world.subscribe("approve-1")
    world.scheduler.run_pass()
    [attempt_id] = world.dispatcher.charges

    class Killed(BaseException):
        pass

    def die(_order: str) -> None:
        raise Killed

    world.gateway.before_answer = die
    with pytest.raises(Killed):
        world.charger.charge(attempt_id)
    world.gateway.before_answer = None
    assert world.attempts(sub_id)[0].state == "sending"
    # The redelivered message comes back at once: too early to call, nothing is sent.
    assert world.charger.charge(attempt_id) == "in_flight"
    world.tick(31)  # the scheduler's reconciliation pass settles it by status
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    assert len(world.gateway.payment_calls) == 1
    assert len(world.gateway.deposited()) == 1


def test_a_send_that_never_reached_the_gateway_gets_a_new_order_number(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    # A worker killed after marking the attempt "sending" but before the call.
    world.sent_without_answer()
    world.tick(31)  # reconcile: the gateway has no such order → no charge happened
    first = world.attempts(sub_id)[0]
    assert first.state == "failed" and first.reason == "not_received"
    world.tick(5)  # the backoff is over, but the not-received re-check is not yet due
    assert len(world.attempts(sub_id)) == 1
    world.tick(5)  # the longest call (8 s) has certainly ended: asked once more, still none
    world.tick()  # then a fresh attempt with a new orderNumber
    attempts = world.attempts(sub_id)
    assert world.gateway.status_calls.count(first.order_number) == 2
    assert attempts[-1].state == "paid"
    assert attempts[-1].order_number != first.order_number
    assert len(world.gateway.deposited()) == 1


def test_insufficient_funds_walks_the_schedule_to_suspension(world: World) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    assert world.sub(sub_id).status == "past_due"
    for _ in range(len(world.charger.policy.soft_decline.retry_after)):
        world.tick(1)
    sub = world.sub(sub_id)
    assert sub.status == "suspended"
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "open" and invoice.next_attempt_at is None
    soft = [a for a in world.attempts(sub_id) if a.category == "soft_decline"]
    assert len(soft) == 1 + len(world.charger.policy.soft_decline.retry_after)
    world.tick(4)
    assert world.sub(sub_id).status == "suspended"  # no retries while suspended
    assert len(world.attempts(sub_id)) == len(soft)
    world.tick(2)  # cancel_after (5s) has passed
    assert world.sub(sub_id).status == "canceled"
    assert [i.status for i in world.invoices(sub_id)] == ["uncollectible"]
    assert world.gateway.deposited() == []


def test_binding_not_found_is_confirmed_then_waits_for_a_new_card(world: World) -> None:
    sub_id = world.subscribe("notfound-1")
    world.tick()
    assert world.sub(sub_id).status == "active"  # confirming once before blaming the card
    world.tick(2)
    assert world.sub(sub_id).status == "needs_payment_method"
    calls = len(world.gateway.payment_calls)
    world.tick(5)
    assert len(world.gateway.payment_calls) == calls  # no retries without a new binding
    world.app.actions.subscriptions.set_binding(sub_id, "approve-2", actor="crm", reason="new card")
    world.tick()
    assert world.sub(sub_id).status == "active"
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]


def test_an_authentication_error_pauses_charging_and_touches_no_subscription(
    world: World,
) -> None:
    ids = [world.subscribe(f"approve-{n}", customer_id=f"c{n}") for n in range(3)]
    world.gateway.auth_ok = False
    world.tick()
    assert {world.sub(i).status for i in ids} == {"active"}
    # The three went out together in one batch; the first error paused everyone after it.
    assert len(world.gateway.payment_calls) == 3
    assert {i.status for s in ids for i in world.invoices(s)} == {"open"}
    world.tick(1)
    assert len(world.gateway.payment_calls) == 3
    world.gateway.auth_ok = True
    world.tick(3)  # the probe succeeds, charging resumes by itself
    world.tick(0)
    assert {i.status for s in ids for i in world.invoices(s)} == {"paid"}
    assert {world.sub(i).status for i in ids} == {"active"}


def test_manual_retry_is_refused_for_a_paid_invoice(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    world.tick()
    with pytest.raises(ConflictError, match="no open invoice"):
        world.app.actions.retries.retry(sub_id, actor="ops", reason="try again")


def test_manual_retry_does_not_use_up_a_dunning_step(world: World) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    world.app.actions.retries.retry(sub_id, actor="alice", reason="customer called")
    world.work()
    for _ in range(4):
        world.tick(1)
    attempts = world.attempts(sub_id)
    automatic = [a for a in attempts if a.trigger != "manual"]
    assert [a.trigger for a in attempts].count("manual") == 1
    assert len(automatic) == 1 + len(world.charger.policy.soft_decline.retry_after)
    assert world.sub(sub_id).status == "suspended"


def test_lost_enqueue_is_sent_again_by_a_later_pass(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    world.scheduler.run_pass()
    world.dispatcher.charges.clear()  # Redis lost the message
    world.tick(30)
    assert world.invoices(sub_id)[0].status == "open"
    world.tick(31)
    assert world.invoices(sub_id)[0].status == "paid"
    assert len(world.gateway.payment_calls) == 1


def test_missed_periods_are_each_invoiced_once(world: World) -> None:
    """With ``[catch_up] mode = "all"`` (the default, "latest", is in test_catch_up.py)."""
    world.scheduler.policy = replace(
        world.scheduler.policy, catch_up=CatchUpPolicy(CatchUpMode.ALL)
    )
    sub_id = world.subscribe("approve-1", schedule="0 * * * *")
    world.clock.advance(hours=5)
    world.scheduler.run_pass()
    world.scheduler.run_pass()
    world.work()
    invoices = world.invoices(sub_id)
    assert len(invoices) == 6
    assert len({i.period_start for i in invoices}) == 6
    assert {i.status for i in invoices} == {"paid"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": "61 * * * *"}, "invalid cron schedule"),
        ({"schedule": "every day"}, "invalid cron schedule"),
        ({"amount": 0}, "amount must be between"),
        ({"amount": -5}, "amount must be between"),
        ({"currency": "RUB"}, "currency must be a 3-digit"),
        ({"currency": "64"}, "currency must be a 3-digit"),
        ({"binding_id": "  "}, "binding id must not be empty"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"customer_id": ""}, "customer id"),
        ({"start_at": datetime(2026, 1, 1, tzinfo=UTC)}, "in the past"),
        ({"start_at": datetime(2026, 12, 5)}, "UTC offset"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    world: World, change: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "customer_id": "c1",
        "binding_id": "approve-1",
        "amount": 100,
        "schedule": "0 3 1 * *",
    }
    fields.update(change)
    with pytest.raises(ValidationError, match=message):
        world.app.actions.subscriptions.create(
            NewSubscription(**fields), actor="crm", reason="signup"
        )  # type: ignore[arg-type]
    with world.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Subscription)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def _fail_first_attempt_as_never_received(world: World, sub_id: int) -> ChargeAttempt:
    world.sent_without_answer()
    world.tick(31)  # reconciled: the gateway has no such order
    first = world.attempts(sub_id)[0]
    assert first.state == "failed" and first.reason == "not_received"
    return first


def _recheck_then_retry(world: World) -> None:
    """The not-received re-check falls due (longest call 8 s) and is answered, then the
    invoice's next attempt is created and sent."""
    world.tick(10)
    world.tick()


def test_a_charge_found_late_is_recorded_as_paid_on_recheck(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    first = _fail_first_attempt_as_never_received(world, sub_id)
    # The request did reach the bank after all (a callback tells us to look again).
    world.late_deposit(first, "late-1")
    assert world.charger.reconcile(first.id) == "paid_on_recheck"
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    world.tick(10)  # the planned transient retry no longer charges anything
    assert len(world.gateway.payment_calls) == 0
    assert world.attempts(sub_id)[0].state == "paid"


def test_a_second_deposited_attempt_is_flagged_for_refund_never_hidden(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    first = _fail_first_attempt_as_never_received(world, sub_id)
    _recheck_then_retry(world)  # a new attempt with a new orderNumber pays the invoice
    assert world.invoices(sub_id)[0].status == "paid"
    world.late_deposit(first, "late-2")
    world.charger.reconcile(first.id)
    attempts = world.attempts(sub_id)
    assert [a.state for a in attempts] == ["paid", "paid"]
    assert [a.needs_refund for a in attempts] == [True, False]
    with world.db.transaction() as s:
        kinds = set(s.scalars(select(Event.kind).where(Event.subscription_id == sub_id)))
    assert "double_charge" in kinds


def test_an_order_that_stays_pending_is_flagged_for_an_operator_never_guessed(
    world: World,
) -> None:
    from billing.services.pipeline.reconciliation import reconcile_now

    sub_id = world.subscribe("pending-1")
    world.tick()
    assert world.attempts(sub_id)[0].state == "unknown"
    for _ in range(40):  # the fast policy gives up after one minute of checks
        world.tick(2)
    [attempt] = world.attempts(sub_id)
    assert attempt.state == "needs_operator"
    assert world.invoices(sub_id)[0].status == "open"
    assert len(world.gateway.payment_calls) == 1  # never sent again
    report = reconcile_now(world.charger)
    assert [row["attempt_id"] for row in report.needs_operator] == [attempt.id]
    assert report.needs_refund == []


def test_the_reconcile_pass_settles_unknown_outcomes_and_lists_refunds(world: World) -> None:
    from billing.services.pipeline.reconciliation import reconcile_now

    sub_id = world.subscribe("approve-1")
    first = _fail_first_attempt_as_never_received(world, sub_id)
    _recheck_then_retry(world)
    world.late_deposit(first, "late-3")
    world.charger.reconcile(first.id)
    report = reconcile_now(world.charger)
    assert [row["order_number"] for row in report.needs_refund] == [first.order_number]


def test_a_502_from_a_proxy_after_the_charge_is_settled_by_status_not_recharged(
    world: World,
) -> None:
    sub_id = world.subscribe("proxy502-1")
    world.tick()
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    assert len(world.gateway.payment_calls) == 1
    assert len(world.gateway.deposited()) == 1


def test_a_500_before_charging_is_retried_with_a_new_order_number_once_confirmed(
    world: World,
) -> None:
    sub_id = world.subscribe("http500-1")
    world.tick()
    [first] = world.attempts(sub_id)
    assert first.state == "unknown"  # not yet known that nothing happened
    world.tick(31)  # the call has certainly ended and the gateway has no such order
    assert world.attempts(sub_id)[0].reason == "not_received"
    assert world.sub(sub_id).status == "active"  # a gateway problem is not the customer's
    with world.db.transaction() as s:
        attempt = s.get_one(ChargeAttempt, first.id)
        assert attempt.state == "failed"


def test_a_suspended_subscription_with_a_new_card_is_charged_once_not_for_missed_months(
    world: World,
) -> None:
    sub_id = world.subscribe("insufficient-1", schedule="0 * * * *")
    world.tick()
    for _ in range(3):
        world.tick(1)
    assert world.sub(sub_id).status == "suspended"
    world.clock.advance(hours=2, seconds=3)  # two billing hours pass while suspended
    with world.db.transaction() as s:
        s.get_one(Subscription, sub_id).cancel_at = None  # an operator keeps it alive
    world.app.actions.subscriptions.set_binding(sub_id, "approve-2", actor="crm", reason="new card")
    world.tick()
    invoices = world.invoices(sub_id)
    assert [i.status for i in invoices] == ["paid"]
    assert world.sub(sub_id).status == "active"
    sub = world.sub(sub_id)
    assert sub.next_charge_at is not None and sub.next_charge_at > world.clock()


def test_a_paused_subscription_is_not_charged_by_a_queued_attempt(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    world.scheduler.run_pass()
    with world.db.transaction() as s:
        s.get_one(Subscription, sub_id).status = "paused"
    world.work()
    assert world.gateway.payment_calls == []
    assert world.attempts(sub_id)[0].reason == "subscription_paused"


def test_a_send_that_stalled_past_reconciliation_is_still_recorded_when_it_charges(
    world: World,
) -> None:
    sub_id = world.subscribe("approve-1")
    attempt_id = world.queued_charge()

    def stall(_order: str) -> None:
        # The request is stuck on its way; meanwhile the sweep sees no order at the bank.
        world.gateway.before_charge = None
        world.clock.advance(seconds=31)
        assert world.charger.reconcile(attempt_id) == "transient"

    world.gateway.before_charge = stall
    assert world.charger.charge(attempt_id) == "paid_on_recheck"
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    world.tick(10)  # the retry planned by the sweep finds the invoice paid
    assert len(world.gateway.deposited()) == 1
    assert [a.state for a in world.attempts(sub_id)] == ["paid"]


def test_a_worker_that_stalls_before_sending_does_not_send(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    attempt_id = world.queued_charge()
    real_clock = world.charger.clock
    # Claimed, then 23 s pass before the call would go out: more than the 22 s send window
    # (30 s lease minus the 8 s longest call).
    calls = iter([0, 0, 23])

    def slow_clock():  # type: ignore[no-untyped-def]
        world.clock.advance(seconds=next(calls, 0))
        return real_clock()

    world.charger.clock = slow_clock
    assert world.charger.charge(attempt_id) == "stalled"
    world.charger.clock = real_clock
    assert world.gateway.payment_calls == []
    world.tick(31)  # ruled "not received"
    world.tick(10)  # re-checked once the longest call has certainly ended
    world.tick()  # then a new attempt
    assert world.invoices(sub_id)[0].status == "paid"
    assert len(world.gateway.deposited()) == 1


def test_late_messages_in_a_backlog_are_not_sent_again(world: World) -> None:
    world.subscribe("approve-1")
    world.scheduler.run_pass()
    assert len(world.dispatcher.charges) == 1
    world.clock.advance(seconds=120)  # past requeue_after, but the message is still queued
    assert world.scheduler.run_pass().requeued == 0
    assert len(world.dispatcher.charges) == 1
    world.dispatcher.charges.clear()  # now it is lost (Redis restarted)
    assert world.scheduler.run_pass().requeued == 1


def test_paying_a_suspended_subscription_keeps_its_requested_cancellation(world: World) -> None:
    sub_id = world.subscribe("insufficient-1", schedule="0 * * * *")
    world.tick()
    assert world.sub(sub_id).status == "past_due"
    world.app.actions.pausing.cancel(
        sub_id, actor="alice", reason="customer leaves", at_period_end=True
    )
    for _ in range(3):
        world.tick(1)
    assert world.sub(sub_id).status == "suspended"
    with world.db.transaction() as s:  # the customer topped up the card
        s.get_one(Subscription, sub_id).binding_id = "approve-1"
    world.app.actions.retries.retry(sub_id, actor="ops", reason="try again")
    world.work()
    sub = world.sub(sub_id)
    assert sub.status == "active"
    assert sub.next_charge_at is None  # no new period: the cancellation stands
    world.clock.advance(hours=2)
    world.tick()
    assert world.sub(sub_id).status == "canceled"
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]
