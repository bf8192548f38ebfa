"""Public events (the transactional outbox) as a SaaS receiver sees them: one per change
that matters, written in the change's own transaction, ordered per subscription, and
pageable by cursor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.errors import ValidationError
from billing.services.audit import record_event
from billing.services.read.events import list_events
from billing.storage.outbox_tables import OutboxEvent
from billing.storage.tables import Subscription
from tests.support.world import FAST_POLICY, ServiceWorld, sqlite_url


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ServiceWorld]:
    with ServiceWorld.fast(sqlite_url(tmp_path)) as w:
        yield w


def events(world: ServiceWorld, **query: Any) -> list[dict[str, Any]]:
    return list_events(world.db, **query).events


def test_a_paid_period_gives_created_invoice_created_and_paid_in_order(
    world: ServiceWorld,
) -> None:
    sub_id = world.subscribe("approve-1234567")
    world.tick()
    got = events(world)
    assert [e["type"] for e in got] == [
        "subscription.created",
        "invoice.created",
        "invoice.paid",
    ]
    assert [e["sequence"] for e in got] == [1, 2, 3]
    paid = got[-1]
    assert paid["livemode"] is True and paid["id"].startswith("evt_")
    assert paid["data"]["status"] == "paid"
    assert (paid["data"]["amount"], paid["data"]["currency"]) == (49900, "643")
    assert paid["data"]["subscription_id"] == sub_id
    created = got[0]["data"]
    assert created["binding"] == "…4567"
    assert "approve-1234567" not in str(got)


def test_payment_failed_carries_category_codes_attempt_and_next_retry(
    world: ServiceWorld,
) -> None:
    world.subscribe("insufficient-1")
    world.tick()
    failed = [e for e in events(world) if e["type"] == "invoice.payment_failed"]
    assert len(failed) == 1
    failure = failed[0]["data"]["failure"]
    assert failure["category"] == "soft_decline"
    assert failure["attempt_number"] == 1
    assert failure["error_code"] is not None
    assert failure["next_retry_at"] is not None
    types = [e["type"] for e in events(world)]
    assert "subscription.past_due" in types


def _pause_by_hand(session: Session, world: ServiceWorld, sub_id: int) -> None:
    """A status change with its event, in the caller's transaction (not yet committed)."""
    sub = session.get_one(Subscription, sub_id)
    record_event(
        session,
        world.clock(),
        "subscription_status",
        "paused by hand",
        subscription_id=sub_id,
        from_state=sub.status,
        to_state="paused",
    )
    sub.status = "paused"


def test_nothing_is_sent_for_a_rolled_back_change(world: ServiceWorld) -> None:
    sub_id = world.subscribe("approve-1")
    before = len(events(world))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), world.db.transaction() as session:
        _pause_by_hand(session, world, sub_id)
        raise Boom
    assert len(events(world)) == before
    # And the next committed change is numbered right after the last one sent.
    world.app.actions.pausing.pause(sub_id, actor="ops", reason="customer asked")
    last = events(world)[-1]
    assert (last["type"], last["sequence"]) == ("subscription.paused", before + 1)


def test_the_event_of_a_change_is_written_by_the_change_s_own_commit(
    world: ServiceWorld,
) -> None:
    sub_id = world.subscribe("approve-1")
    with world.db.transaction() as session:
        _pause_by_hand(session, world, sub_id)
        count = session.scalar(select(func.count()).select_from(OutboxEvent))
        assert count == 1  # only subscription.created so far: written at commit
    paused = events(world)[-1]
    assert paused["type"] == "subscription.paused"
    assert paused["data"]["status"] == "paused"
    assert paused["data"]["previous_status"] == "active"


def test_polling_pages_oldest_first_by_cursor_and_filters_by_type(
    world: ServiceWorld,
) -> None:
    for n in range(3):
        world.subscribe(f"approve-{n}")
    world.tick()
    first = list_events(world.db, limit=2)
    assert first.has_more and len(first.events) == 2
    rest = list_events(world.db, after=first.next_cursor, limit=100)
    assert not rest.has_more
    everything = [e["id"] for e in first.events + rest.events]
    assert everything == [e["id"] for e in events(world)]
    assert len(everything) == 9
    paid = events(world, types="invoice.paid")
    assert [e["type"] for e in paid] == ["invoice.paid"] * 3
    with pytest.raises(ValidationError, match=r"unknown event type 'invoice\.payd'"):
        list_events(world.db, types="invoice.payd")
    with pytest.raises(ValidationError, match="invalid cursor"):
        list_events(world.db, after="abc")


def test_on_postgresql_sequences_continue_per_subscription(pg_url: str) -> None:
    world = ServiceWorld.fast(pg_url)
    try:
        first, second = world.subscribe("approve-1"), world.subscribe("approve-2")
        world.tick()
        got = events(world)
        for sub_id in (first, second):
            mine = [e for e in got if e["subscription_id"] == sub_id]
            assert [e["type"] for e in mine] == [
                "subscription.created",
                "invoice.created",
                "invoice.paid",
            ]
            assert [e["sequence"] for e in mine] == [1, 2, 3]
    finally:
        world.db.dispose()


@pytest.mark.parametrize(
    ("lead", "expected", "backend"),
    [("3d", 1, "sqlite"), ("", 0, "sqlite"), ("12h", 0, "sqlite"), ("3d", 1, "postgresql")],
)
def test_invoice_upcoming_is_sent_once_per_charge_and_only_when_configured(
    tmp_path: Path, request: pytest.FixtureRequest, lead: str, expected: int, backend: str
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else sqlite_url(tmp_path)
    world = ServiceWorld.build(
        url,
        policy=load_policy(FAST_POLICY),
        invoice_upcoming_before=lead,
    )
    try:
        new = NewSubscription("cust-1", "approve-1", 49900, "0 3 1 * *", timezone="UTC")
        world.clock.now = world.clock.now.replace(day=29)  # next charge: in 3 days 3 hours
        world.app.actions.subscriptions.create(new, actor="crm", reason="signup")
        world.clock.advance(hours=4)  # 2 days 23 hours before the charge
        world.app.upcoming.run_pass()
        world.app.upcoming.run_pass()
        upcoming = events(world, types="invoice.upcoming")
        assert len(upcoming) == expected
        if upcoming:
            assert upcoming[0]["data"]["period_start"] == "2027-01-01T03:00:00+00:00"
            assert (upcoming[0]["data"]["amount"], upcoming[0]["data"]["currency"]) == (
                49900,
                "643",
            )
    finally:
        world.db.dispose()
