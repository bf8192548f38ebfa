"""Owed invoices are always collected: after any change, every open invoice has a next step
(the world checks it after each pass, worker run and action)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.domain.dunning_policy import DunningPolicy
from billing.domain.policy_file import load_policy
from tests.support.dunning_world import DunningWorld, make_dunning_world

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"
DAY = 24 * 3600


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DunningWorld]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    w = make_dunning_world(tmp_path, DunningPolicy(), database_url=url)
    yield w
    w.db.dispose()


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[DunningWorld]:
    w = make_dunning_world(tmp_path, load_policy(FAST_POLICY))
    yield w
    w.db.dispose()


def test_invoices_opened_while_waiting_for_a_card_are_charged_when_it_recovers_another_way(
    world: DunningWorld,
) -> None:
    world.gateway.refuse_all = True  # the bank says the binding is not found
    sub_id = world.subscribe("approve-1", "0 3 * * *")
    world.tick(4 * 3600)
    world.tick(2 * 3600)  # confirmed an hour later
    assert world.sub(sub_id).status == "needs_payment_method"
    world.tick(DAY)
    world.tick(DAY)  # two more daily invoices open while it waits for a card
    assert len(world.invoices(sub_id)) == 3

    world.gateway.refuse_all = False  # the bank fixed the binding
    world.manual_retry(sub_id)  # an operator retries the oldest invoice: it is paid
    world.work()
    assert world.sub(sub_id).status == "active"
    for _ in range(3):
        world.tick(60)
    assert [i.status for i in world.invoices(sub_id)] == ["paid"] * 3
    assert len(world.gateway.deposited()) == 3


def _suspend(world: DunningWorld, binding: str) -> int:
    sub_id = world.subscribe(binding, "0 3 1 * *")
    world.tick(3 * 3600)
    for _ in range(3):
        world.tick(1)
    assert world.sub(sub_id).status == "suspended"
    return sub_id


def test_a_manual_retry_in_flight_when_a_new_card_is_set_is_followed_by_the_new_card(
    fast: DunningWorld,
) -> None:
    sub_id = _suspend(fast, "insufficient-1")

    def new_card_meanwhile(order_number: str) -> None:
        fast.gateway.before_answer = None
        fast.set_card(sub_id, "approve-2")

    fast.gateway.before_answer = new_card_meanwhile
    fast.manual_retry(sub_id)
    fast.work()  # the old card is declined after the new one was set
    [invoice] = fast.invoices(sub_id)
    assert invoice.status == "open" and invoice.next_attempt_at is not None
    fast.tick(1)
    [invoice] = fast.invoices(sub_id)
    assert invoice.status == "paid"
    assert fast.sub(sub_id).status == "active"
    assert fast.gateway.cards[-2:] == ["insufficient-1", "approve-2"]


def test_an_invoice_that_waited_is_charged_when_the_failing_one_is_voided_during_a_pause(
    world: DunningWorld,
) -> None:
    sub_id = world.subscribe("insufficient-1", "0 3 * * *")
    world.tick(4 * 3600)
    world.tick(DAY)  # the day-1 invoice waits for the failing day-0 one
    first, second = world.invoices(sub_id)
    assert second.next_attempt_at is None
    pausing = world.app.actions.pausing
    pausing.pause(sub_id, actor="ops", reason="customer on holiday")
    world.check()
    world.app.actions.invoices.void(first.id, actor="ops", reason="goodwill")
    world.check()
    world.set_card(sub_id, "approve-2")  # no dunning run while paused: only the card changes
    pausing.resume(sub_id, actor="ops", reason="back")
    world.check()
    world.tick(60)
    assert [i.status for i in world.invoices(sub_id)] == ["void", "paid"]
    assert world.sub(sub_id).status == "active"
