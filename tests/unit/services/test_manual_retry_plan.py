"""An operator's manual retry never moves the automatic dunning plan (next attempt, status,
cancel deadline), except that a payment ends it; and a card declined as lost, stolen or
fraud is not retried by hand (one, bulk, console) until a new binding is set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.errors import ConflictError
from billing.gateway.port import ChargeRequest
from billing.gateway.results import GatewayResult, JsonReply
from billing.storage.tables import Subscription
from tests.support.fakes import FakeGateway, declined_body
from tests.support.world import ServiceWorld, sqlite_url

LOST_CARD = 208  # actionCode: lost card (do not retry)


class LostCardGateway(FakeGateway):
    """The fake bank, plus ``stolen-…`` bindings declined as a lost card."""

    def charge(self, request: ChargeRequest) -> GatewayResult:
        if not request.binding_id.startswith("stolen-"):
            return super().charge(request)
        self.payment_calls.append(request.order_number)
        order_id = str(uuid.uuid4())
        self.orders[request.order_number] = {
            "orderStatus": 6,
            "orderId": order_id,
            "amount": request.amount,
            "actionCode": LOST_CARD,
        }
        body = declined_body(request.order_number, request.amount, order_id, LOST_CARD)
        return JsonReply(200, body)


@dataclass
class World(ServiceWorld):
    def bank_now_says(self, sub_id: int, binding: str) -> None:
        """The same card, answered differently by the bank (no new binding, no plan change)."""
        with self.db.transaction() as s:
            s.execute(
                update(Subscription).where(Subscription.id == sub_id).values(binding_id=binding)
            )

    def plan(self, sub_id: int) -> tuple[datetime | None, str, datetime | None]:
        [invoice] = self.invoices(sub_id)
        sub = self.sub(sub_id)
        return invoice.next_attempt_at, sub.status, sub.cancel_at

    def retry_by_hand(self, sub_id: int) -> None:
        self.app.actions.retries.retry(sub_id, actor="ops", reason="customer called")
        self.work()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World.build(
        sqlite_url(tmp_path),
        policy=DEFAULT_POLICY,
        gateway=LostCardGateway(),
        stale_sending_after=30,
    ) as w:
        yield w


@pytest.mark.parametrize(
    "answer",
    [
        "down-1",  # transient: used to spend the pending step early (retry in 1 minute)
        "insufficient-1",  # soft decline: used to push the plan back by a day from now
        "http500-1",  # an error page before charging: used to plan its own retry
    ],
)
def test_a_manual_retry_that_does_not_pay_leaves_the_plan_as_it_was(
    world: World, answer: str
) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()  # declined: past_due, retry 1 of 4 in a day
    before = world.plan(sub_id)
    assert before[0] is not None and before[1] == "past_due"
    world.clock.advance(hours=5)
    world.bank_now_says(sub_id, answer)
    world.retry_by_hand(sub_id)
    world.tick(60)
    assert world.plan(sub_id) == before
    assert len(world.attempts(sub_id)) == 2  # nothing automatic ran early
    world.bank_now_says(sub_id, "insufficient-1")
    world.clock.now = before[0]
    world.tick()  # the planned retry runs when it was planned
    # (after an HTTP 500 the manual attempt is ruled "not received" and checked once more
    # first: the retry then goes out on the next pass)
    world.tick(10)
    assert [a.trigger for a in world.attempts(sub_id)] == ["scheduled", "manual", "retry"]
    world.bank_now_says(sub_id, "approve-1")
    world.retry_by_hand(sub_id)  # a manual retry that pays ends the plan
    assert world.plan(sub_id) == (None, "active", None)
    assert world.invoices(sub_id)[0].status == "paid"


def test_a_manual_retry_while_waiting_for_a_card_keeps_the_cancel_deadline(world: World) -> None:
    sub_id = world.subscribe("notfound-1")
    world.tick()
    world.tick(3600)  # "binding not found" confirmed: needs_payment_method, canceled in 30 days
    before = world.plan(sub_id)
    assert before[1] == "needs_payment_method" and before[2] is not None
    for _ in range(3):
        world.clock.advance(days=2)
        world.retry_by_hand(sub_id)
        assert world.plan(sub_id) == before  # the 30-day deadline is not restarted
    world.clock.now = before[2] + timedelta(seconds=1)
    world.tick()
    assert world.sub(sub_id).status == "canceled"


def test_a_lost_card_is_refused_by_manual_bulk_and_console_retries_until_a_new_binding(
    world: World,
) -> None:
    sub_id = world.subscribe("stolen-1")
    world.tick()
    assert world.sub(sub_id).status == "needs_payment_method"
    retries = world.app.actions.retries
    with pytest.raises(ConflictError, match=r"lost card.*set a new binding first"):
        retries.retry(sub_id, actor="ops", reason="customer insists")
    with world.db.transaction() as s:  # even if someone makes it chargeable again
        s.execute(update(Subscription).values(status="past_due"))
    bulk = retries.bulk_retry("lost_card", actor="ops", reason="retry all")
    assert bulk["count"] == 0
    assert "lost card" in bulk["skipped"][0]["error"]
    assert len(world.gateway.payment_calls) == 1  # the card was never sent again
    with world.db.transaction() as s:
        s.execute(update(Subscription).values(status="needs_payment_method"))
    # A lost card found by a manual retry of another subscription stops its plan too.
    other = world.subscribe("insufficient-7")
    world.tick()
    world.bank_now_says(other, "stolen-7")
    world.retry_by_hand(other)
    [other_invoice] = world.invoices(other)
    assert (other_invoice.next_attempt_at, world.sub(other).status) == (
        None,
        "needs_payment_method",
    )
    with pytest.raises(ConflictError, match="lost card"):
        retries.retry(other, actor="ops", reason="once more")
    world.app.actions.subscriptions.set_binding(sub_id, "approve-2", actor="crm", reason="new")
    world.work()
    world.tick()
    assert world.invoices(sub_id)[0].status == "paid"
