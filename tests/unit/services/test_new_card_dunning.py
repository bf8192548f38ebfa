"""A new card starts a fresh dunning run, even when the old card's last retry is in flight."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.domain.policy_file import load_policy
from tests.support.dunning_world import DunningWorld, make_dunning_world

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DunningWorld]:
    w = make_dunning_world(tmp_path, load_policy(FAST_POLICY))  # 3 retries, 1 s apart
    yield w
    w.db.dispose()


def test_a_new_card_after_suspension_gets_the_whole_dunning_schedule(
    world: DunningWorld,
) -> None:
    sub_id = world.subscribe("insufficient-1", "0 3 1 * *")
    world.tick(3 * 3600)
    for _ in range(3):
        world.tick(1)
    assert world.sub(sub_id).status == "suspended"

    world.set_card(sub_id, "insufficient-2")  # the new card is short of funds too
    world.tick()
    assert world.sub(sub_id).status == "past_due"  # retry 1 of 3, not suspended again
    for _ in range(2):
        world.tick(1)
        assert world.sub(sub_id).status == "past_due"
    world.tick(1)
    assert world.sub(sub_id).status == "suspended"
    assert world.gateway.cards.count("insufficient-2") == 4  # the charge + 3 retries
    assert world.statuses(sub_id) == ["past_due", "suspended", "past_due", "suspended"]


def test_a_new_card_set_while_the_last_retry_is_in_flight_is_tried(world: DunningWorld) -> None:
    sub_id = world.subscribe("insufficient-1", "0 3 1 * *")
    world.tick(3 * 3600)
    world.tick(1)
    world.tick(1)  # retries 1 and 2 declined; retry 3 is the last

    def new_card_meanwhile(order_number: str) -> None:
        world.gateway.before_answer = None
        world.set_card(sub_id, "approve-2")

    world.gateway.before_answer = new_card_meanwhile
    world.tick(1)  # the last retry on the old card is declined after the new card was set
    assert world.sub(sub_id).status == "past_due"
    world.tick()
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]
    assert world.sub(sub_id).status == "active"
    assert world.gateway.cards == ["insufficient-1"] * 4 + ["approve-2"]
    assert "suspended" not in world.statuses(sub_id)
