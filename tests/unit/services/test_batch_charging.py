"""Charging by the batch on the embedded database (SQLite): what a worker does with one
message of attempt ids, and the breaker that counts outcomes without a hot row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from billing.domain.model import Category, Outcome
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.services.pipeline.circuit_watch import CircuitWatch
from billing.storage.circuit_row import load_circuit
from billing.storage.tables import ChargeAttempt, Event, Invoice, Subscription
from tests.support.world import ServiceWorld

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"
OUTAGE = Outcome(category=Category.TRANSIENT, reason="system_error")
HEALTHY = Outcome(category=Category.PAID, reason="paid")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ServiceWorld]:
    w = ServiceWorld.build(
        f"sqlite:///{tmp_path / 'billing.db'}",
        policy=load_policy(FAST_POLICY),
        stale_sending_after=30,
        circuit_outage_threshold=3,
    )
    yield w
    w.app.close()


def _subscribe(world: ServiceWorld, *bindings: str) -> list[int]:
    ids = []
    for n, binding in enumerate(bindings):
        created = world.app.actions.subscriptions.create(
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
        ids.append(int(created.body["id"]))
    return ids


def _due(world: ServiceWorld) -> list[int]:
    world.scheduler.run_pass()
    ids, world.dispatcher.charges = world.dispatcher.charges, []
    return ids


def _invoice_status(world: ServiceWorld) -> list[str]:
    with world.db.transaction() as session:
        return list(session.scalars(select(Invoice.status).order_by(Invoice.id)))


def test_a_batch_pays_declines_and_skips_each_by_the_same_rules(world: ServiceWorld) -> None:
    subs = _subscribe(world, "approve-1", "insufficient-2", "approve-3", "approve-4")
    ids = _due(world)
    with world.db.transaction() as session:  # held meanwhile (the worker's race with a hold)
        session.get_one(Subscription, subs[3]).status = "held"
    results = world.app.batch_charger.charge_batch(ids)
    assert results == {"paid": 2, "soft_decline": 1, "skipped": 1}
    assert _invoice_status(world) == ["paid", "open", "paid", "open"]
    assert len(world.gateway.payment_calls) == 3  # the held subscription was not charged
    with world.db.transaction() as session:
        kinds = list(session.scalars(select(Event.kind).where(Event.invoice_id.is_not(None))))
    assert kinds.count("invoice_paid") == 2 and kinds.count("attempt_paid") == 2
    assert "attempt_skipped" in kinds


def test_a_paused_breaker_holds_the_batch_back_unsent(world: ServiceWorld) -> None:
    _subscribe(world, "approve-1", "approve-2")
    ids = _due(world)
    world.app.charger.settlement.circuit.observe(
        [Outcome(category=Category.MERCHANT_CONFIG, reason="auth_error")], world.clock()
    )
    assert world.app.batch_charger.charge_batch(ids) == {"paused": 2}
    assert world.gateway.payment_calls == []
    with world.db.transaction() as session:
        states = set(session.scalars(select(ChargeAttempt.state)))
        enqueued = set(session.scalars(select(ChargeAttempt.enqueued_at)))
    assert states == {"pending"} and enqueued == {None}  # the scheduler sends them again


def test_a_redelivered_batch_reconciles_what_was_sent_and_sends_the_rest(
    world: ServiceWorld,
) -> None:
    _subscribe(world, "approve-1", "approve-2", "approve-3")
    ids = _due(world)
    world.app.batch_charger.charge_batch(ids[:1])
    results = world.app.batch_charger.charge_batch(ids)
    assert results == {"already_final": 1, "paid": 2}
    assert len(world.gateway.payment_calls) == 3


def test_the_breaker_row_is_written_only_when_a_pause_starts(world: ServiceWorld) -> None:
    watch = CircuitWatch(world.db, pause_backoff=(timedelta(seconds=5),), outage_threshold=3)
    writes: list[str] = []
    event.listen(world.db.engine, "commit", lambda _conn: writes.append("commit"))
    now = world.clock()
    watch.observe([OUTAGE, OUTAGE, HEALTHY, OUTAGE, OUTAGE], now)
    assert watch.failures() == 2 and writes == []  # counted in memory only
    with world.db.transaction() as session:
        assert load_circuit(session).allows_charging(now)
    writes.clear()
    watch.observe([OUTAGE, OUTAGE, OUTAGE, OUTAGE], now)  # one incident: one pause
    assert writes == ["commit"]
    with world.db.transaction() as session:
        circuit = load_circuit(session)
        pauses = list(session.scalars(select(Event.kind).where(Event.kind == "charging_paused")))
    assert not circuit.allows_charging(now) and circuit.trips == 1
    assert circuit.consecutive_failures == 3
    assert pauses == ["charging_paused"]


def test_breaker_counts_are_kept_per_key(world: ServiceWorld) -> None:
    watch = CircuitWatch(world.db, pause_backoff=(timedelta(seconds=5),), outage_threshold=3)
    watch.observe([OUTAGE, OUTAGE], world.clock(), key="merchant-a")
    watch.observe([HEALTHY], world.clock(), key="merchant-b")
    assert watch.failures("merchant-a") == 2 and watch.failures("merchant-b") == 0
