"""Dunning state belongs to the subscription: with a billing period shorter than the dunning
schedule (daily, weekly), newer invoices wait for the oldest one, and a decline of a newer
invoice never turns ``suspended`` back into ``past_due`` or clears the cancel date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from billing.domain.dunning_policy import DunningPolicy
from tests.support.dunning_world import DunningWorld, make_dunning_world

SIX_HOURS = 6 * 3600


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DunningWorld]:
    w = make_dunning_world(tmp_path, DunningPolicy())  # 1d, 3d, 5d, 7d; suspend; cancel 14d
    yield w
    w.db.dispose()


def _run_days(world: DunningWorld, sub_id: int, days: int) -> list[str]:
    """Passes every six hours; returns the subscription's status after each."""
    seen = []
    for _ in range(days * 4):
        world.tick(SIX_HOURS)
        seen.append(world.sub(sub_id).status)
    return seen


@pytest.mark.parametrize(
    ("schedule", "invoices"),
    [
        pytest.param("0 3 * * *", 17, id="daily"),  # day 0 … day 16, the day it is suspended
        pytest.param("0 3 * * 2", 3, id="weekly"),  # days 0, 7, 14
    ],
)
def test_a_subscription_that_never_pays_is_suspended_then_canceled_never_unsuspended(
    world: DunningWorld, schedule: str, invoices: int
) -> None:
    start = world.clock()
    sub_id = world.subscribe("insufficient-1", schedule)
    seen = _run_days(world, sub_id, 40)

    assert world.statuses(sub_id) == ["past_due", "suspended", "canceled"]
    suspended_at = start + timedelta(hours=6 * (seen.index("suspended") + 1))
    canceled_at = start + timedelta(hours=6 * (seen.index("canceled") + 1))
    assert suspended_at == start + timedelta(days=16, hours=6)  # 1d + 3d + 5d + 7d after day 0
    assert canceled_at == suspended_at + timedelta(days=14)  # the grace period, not reset
    # One collection at a time: only the oldest invoice was charged (once + 4 retries).
    assert world.gateway.cards == ["insufficient-1"] * 5
    assert [i.status for i in world.invoices(sub_id)] == ["uncollectible"] * invoices


def test_a_newer_invoice_waits_for_the_oldest_and_is_charged_once_it_is_paid(
    world: DunningWorld,
) -> None:
    sub_id = world.subscribe("insufficient-1", "0 3 * * *")
    _run_days(world, sub_id, 3)  # invoices of days 0, 1, 2; only the first one is retried
    first, *newer = world.invoices(sub_id)
    assert first.next_attempt_at is not None
    assert [i.next_attempt_at for i in newer] == [None, None]
    assert len(world.gateway.cards) == 2  # day 0 and its first retry (day 1)

    world.set_card(sub_id, "approve-2")
    for _ in range(3):
        world.tick(60)
    assert [i.status for i in world.invoices(sub_id)] == ["paid"] * 3
    assert world.sub(sub_id).status == "active"
    assert world.gateway.cards[2:] == ["approve-2"] * 3  # oldest first, one at a time
