"""Charging by the batch on real PostgreSQL: one claim, concurrent sends, one settlement;
a redelivered batch and a worker that dies between the sends and the settlement still end
in exactly one charge per invoice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.services.pipeline.batch_settlement import BatchSettlement
from billing.storage.outbox_tables import OutboxEvent
from billing.storage.tables import ChargeAttempt, Event, Invoice
from tests.support.world import ServiceWorld

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"


@pytest.fixture
def world(pg_url: str) -> Iterator[ServiceWorld]:
    w = ServiceWorld.build(pg_url, policy=load_policy(FAST_POLICY), stale_sending_after=30)
    yield w
    w.app.close()


def _subscribe(world: ServiceWorld, bindings: list[str]) -> None:
    for n, binding in enumerate(bindings):
        world.app.actions.subscriptions.create(
            NewSubscription(
                customer_id=f"c{n}",
                binding_id=binding,
                amount=49900,
                schedule="0 3 1 * *",
                start_at=world.clock(),
            ),
            actor="crm",
            reason="signup",
        )


def _due_attempt_ids(world: ServiceWorld) -> list[int]:
    world.scheduler.run_pass()
    ids, world.dispatcher.charges = world.dispatcher.charges, []
    return ids


def _count(world: ServiceWorld, query: object) -> int:
    with world.db.transaction() as session:
        return int(session.scalar(query))  # type: ignore[call-overload]


def _deposits_per_invoice(world: ServiceWorld) -> dict[int, int]:
    with world.db.transaction() as session:
        rows = session.execute(select(ChargeAttempt.order_number, ChargeAttempt.invoice_id))
        invoice_of = {number: invoice for number, invoice in rows}
    counts: dict[int, int] = {}
    for order in world.gateway.deposited():
        counts[invoice_of[order]] = counts.get(invoice_of[order], 0) + 1
    return counts


def test_a_batch_is_claimed_and_its_payments_settled_in_two_commits(world: ServiceWorld) -> None:
    _subscribe(world, [f"approve-{n}" for n in range(40)] + ["insufficient-1", "approve-x"])
    ids = _due_attempt_ids(world)
    assert len(ids) == 42
    commits: list[int] = []
    event.listen(world.db.engine, "commit", lambda _conn: commits.append(1))
    results = world.app.batch_charger.charge_batch(ids)

    assert results["paid"] == 41 and results["soft_decline"] == 1, results
    # claim + the paid ones together + the decline on its own (the single settlement)
    assert len(commits) == 3
    paid = _count(world, select(func.count()).select_from(Invoice).where(Invoice.status == "paid"))
    assert paid == 41
    assert set(_deposits_per_invoice(world).values()) == {1}
    # every payment has its attempt and invoice events and its public events
    kinds = _count(
        world,
        select(func.count())
        .select_from(Event)
        .where(Event.kind.in_(["attempt_paid", "invoice_paid"])),
    )
    assert kinds == 82
    public = _count(
        world,
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "invoice.paid"),
    )
    assert public == 41
    declined = _count(
        world,
        select(func.count())
        .select_from(Invoice)
        .where(Invoice.status == "open", Invoice.next_attempt_at.is_not(None)),
    )
    assert declined == 1  # the decline is planned for a retry by the dunning policy


def test_a_redelivered_batch_sends_nothing_twice(world: ServiceWorld) -> None:
    _subscribe(world, [f"approve-{n}" for n in range(20)])
    ids = _due_attempt_ids(world)
    world.app.batch_charger.charge_batch(ids[:10])
    calls = len(world.gateway.payment_calls)
    # the whole batch again (a redelivery that overlaps the part already done)
    results = world.app.batch_charger.charge_batch(ids)
    assert results["already_final"] == 10 and results["paid"] == 10, results
    assert len(world.gateway.payment_calls) == calls + 10
    assert set(_deposits_per_invoice(world).values()) == {1}
    assert len(_deposits_per_invoice(world)) == 20


def test_a_worker_dying_between_the_sends_and_the_settlement_charges_each_invoice_once(
    world: ServiceWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _subscribe(world, [f"approve-{n}" for n in range(15)])
    ids = _due_attempt_ids(world)

    def die(self: BatchSettlement, charged: object) -> list[str]:
        raise SystemExit("killed after the calls, before the settlement")

    monkeypatch.setattr(BatchSettlement, "settle", die)
    with pytest.raises(SystemExit):
        world.app.batch_charger.charge_batch(ids)
    monkeypatch.undo()
    assert len(world.gateway.deposited()) == 15  # the money moved; nothing recorded it yet

    # dramatiq redelivers the batch: nothing is sent again; the sends are still in flight
    results = world.app.batch_charger.charge_batch(ids)
    assert results == {"in_flight": 15}
    assert len(world.gateway.payment_calls) == 15
    # once the sends are stale, the scheduler has them settled by their order status
    world.tick(31)
    world.tick(0)
    paid = _count(world, select(func.count()).select_from(Invoice).where(Invoice.status == "paid"))
    assert paid == 15
    assert len(world.gateway.payment_calls) == 15
    assert set(_deposits_per_invoice(world).values()) == {1}
