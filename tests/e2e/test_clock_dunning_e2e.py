"""A rehearsal driven only by ``billing clock advance`` (test mode): a worker charges through
the sandbox over real HTTP while the test clock moves a year. One subscription is billed
every month; one goes through a whole dunning cycle (declined, retried on the policy's days,
past_due, suspended, canceled); one recovers when a retry succeeds. The events come in the
expected order, stamped with the test clock's time and ``livemode: false``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack

pytestmark = pytest.mark.e2e

START = "2027-01-01T00:00:00+00:00"
#: The first charge: on the schedule (the 1st at 03:00 UTC), three hours after signing up.
FIRST = "2027-01-01T03:00:00+00:00"
TEST_MODE = {
    "BILLING_TEST_MODE": "true",
    # The real policy: retries 1, 3, 5 and 7 days apart, canceled 14 days after suspension.
    "BILLING_DUNNING_POLICY": str(ROOT / "config" / "dunning.toml"),
}


def subscribe(stack: Stack, binding: str, customer: str) -> int:
    created = stack.json(
        "subscriptions",
        "create",
        "--customer-id",
        customer,
        "--binding-id",
        binding,
        "--amount",
        "49900",
        "--schedule",
        "0 3 1 * *",
        "--timezone",
        "UTC",
        "--start-at",
        FIRST,
    )
    return int(created["id"])


def events_of(stack: Stack, sub_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = stack.json(
            "events", "list", "--limit", "500", *(["--after", after] if after else [])
        )
        found += [e for e in page["data"] if e["subscription_id"] == sub_id]
        if not page["has_more"]:
            return found
        after = page["next_cursor"]


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created_at"])


def test_a_year_and_a_dunning_cycle_driven_only_by_the_clock(stack: Stack) -> None:
    stack.env.update(TEST_MODE)
    stack.cli("clock", "set", START)
    stack.start("worker", "worker")
    paying = subscribe(stack, "approve-e2e-clock-1", "cust-year")
    failing = subscribe(stack, "insufficient-e2e-clock-2", "cust-dunning")
    recovering = subscribe(stack, "recover2-e2e-clock-3", "cust-recovery")
    for _ in range(12):
        moved = stack.json("clock", "advance", "30d")
    assert moved["now"] == "2027-12-27T00:00:00+00:00"

    # Billed every month, on the first at 03:00 UTC, announced three days before.
    year = events_of(stack, paying)
    assert [e["type"] for e in year] == ["subscription.created"] + [
        "invoice.upcoming",
        "invoice.created",
        "invoice.paid",
    ] * 12
    paid = [e for e in year if e["type"] == "invoice.paid"]
    assert [at(e) for e in paid] == [datetime(2027, m, 1, 3, tzinfo=UTC) for m in range(1, 13)]
    assert all(e["livemode"] is False for e in year)
    assert [e["sequence"] for e in year] == list(range(1, len(year) + 1))

    # The whole cycle: five declines on the policy's days, suspended, canceled 14 days on.
    cycle = [e for e in events_of(stack, failing) if e["type"] != "invoice.upcoming"]
    assert [e["type"] for e in cycle] == [
        "subscription.created",
        "invoice.created",
        "invoice.payment_failed",
        "subscription.past_due",
        "invoice.payment_failed",
        "invoice.payment_failed",
        "invoice.payment_failed",
        "invoice.payment_failed",
        "subscription.suspended",
        "invoice.uncollectible",
        "subscription.canceled",
    ]
    failures = [e for e in cycle if e["type"] == "invoice.payment_failed"]
    assert at(failures[0]) == datetime(2027, 1, 1, 3, tzinfo=UTC)
    gaps = [at(b) - at(a) for a, b in pairwise(failures)]
    assert gaps == [timedelta(days=d) for d in (1, 3, 5, 7)]
    for before, after in pairwise(failures):
        assert before["data"]["failure"]["next_retry_at"] == after["created_at"]
        assert before["data"]["failure"]["category"] == "soft_decline"
    assert failures[-1]["data"]["failure"]["next_retry_at"] is None
    suspended, canceled = cycle[8], cycle[10]
    assert at(suspended) == at(failures[-1])
    assert at(canceled) - at(suspended) == timedelta(days=14)
    assert canceled["data"]["status"] == "canceled"

    # Recovery: two declines, then the retry three days later is paid.
    back = [e["type"] for e in events_of(stack, recovering) if e["type"] != "invoice.upcoming"]
    assert (
        back
        == [
            "subscription.created",
            "invoice.created",
            "invoice.payment_failed",
            "subscription.past_due",
            "invoice.payment_failed",
            "invoice.paid",
            "subscription.recovered",
        ]
        + ["invoice.created", "invoice.paid"] * 11
    )  # then billed every month, February on
