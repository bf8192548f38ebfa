"""The scheduler on real PostgreSQL: concurrent passes, batches, redelivery races."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from billing.domain.dunning_policy import CatchUpMode, CatchUpPolicy
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.services.actions.subscriptions import SubscriptionActions
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"


def _subscribe_many(db: Database, clock: ManualClock, count: int) -> None:
    subscriptions = SubscriptionActions(db, clock=clock)
    for n in range(count):
        subscriptions.create(
            NewSubscription(
                customer_id=f"c{n}",
                binding_id=f"approve-{n}",
                amount=1000 + n,
                schedule="*/10 * * * *",
                timezone="UTC",
                start_at=clock() - timedelta(minutes=30),
            ),
            actor="crm",
            reason="signup",
        )


def test_schedulers_running_at_the_same_time_open_one_invoice_per_period(pg_url: str) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    db = Database(pg_url)
    _subscribe_many(db, clock, 120)
    # every missed period is opened (catch-up "all"), so the passes race on four each
    policy = replace(load_policy(FAST_POLICY), catch_up=CatchUpPolicy(CatchUpMode.ALL))
    dispatchers = [RecordingDispatcher() for _ in range(4)]
    schedulers = [
        Scheduler(Database(pg_url), d, policy, clock=clock, batch_size=16) for d in dispatchers
    ]
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        try:
            barrier.wait()
            scheduler.run_pass()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for scheduler in schedulers:
        scheduler.db.dispose()
    assert errors == []
    with db.transaction() as session:
        invoices = session.scalar(select(func.count()).select_from(Invoice))
        periods = session.scalar(
            select(func.count()).select_from(
                select(Invoice.subscription_id, Invoice.period_start).distinct().subquery()
            )
        )
        attempts = session.scalar(select(func.count()).select_from(ChargeAttempt))
    # start 02:30, now 03:00: periods 02:30, 02:40, 02:50, 03:00 for each subscription
    assert invoices == periods == 120 * 4
    assert attempts == invoices
    db.dispose()
    sent = [i for d in dispatchers for i in d.charges]
    assert len(sent) == len(set(sent)) == attempts


def _analyzed(db: Database, table: str) -> int:
    with db.transaction() as session:
        count = session.scalar(
            text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
        )
    return int(count or 0)


def test_a_pass_that_opens_a_burst_of_invoices_refreshes_the_planner_statistics(
    pg_url: str,
) -> None:
    """At month start the claim queries ran on statistics from before the burst (0.6 s a
    batch of 500 at 80,000 due: every due invoice sorted for each batch)."""
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    db = Database(pg_url)
    _subscribe_many(db, clock, 12)
    policy = load_policy(FAST_POLICY)
    small = Scheduler(db, RecordingDispatcher(), policy, clock=clock, refresh_statistics_after=20)
    before = _analyzed(db, "invoices"), _analyzed(db, "charge_attempts")
    assert small.run_pass().invoices_opened == 12  # fewer than 20: left to autovacuum
    assert (_analyzed(db, "invoices"), _analyzed(db, "charge_attempts")) == before
    _subscribe_many(db, clock, 12)
    clock.advance(minutes=10)
    assert small.run_pass().invoices_opened == 24
    assert _analyzed(db, "invoices") == before[0] + 1
    assert _analyzed(db, "charge_attempts") == before[1] + 1
    db.dispose()


def test_concurrent_deliveries_of_one_attempt_charge_once(pg_url: str) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    db = Database(pg_url)
    _subscribe_many(db, clock, 1)
    dispatcher = RecordingDispatcher()
    policy = load_policy(FAST_POLICY)
    Scheduler(db, dispatcher, policy, clock=clock).run_pass()
    gateway = FakeGateway()
    attempt_ids = sorted(set(dispatcher.charges))
    barrier = threading.Barrier(4)

    def deliver(attempt_id: int) -> None:
        own = Database(pg_url)
        try:
            charger = Charger(own, gateway, policy, clock=clock)
            barrier.wait()
            charger.charge(attempt_id)
        finally:
            own.dispose()

    threads = [threading.Thread(target=deliver, args=(attempt_ids[0],)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(gateway.payment_calls) == 1
    with db.transaction() as session:
        attempt = session.get_one(ChargeAttempt, attempt_ids[0])
        assert attempt.state == "paid"
    db.dispose()


def test_concurrent_outages_in_one_worker_pause_charging_once_on_a_fresh_database(
    pg_url: str,
) -> None:
    """Outages are counted in the worker's memory (no row every charge updates); the
    threshold reached by threads at once stores one pause, with its count."""
    from billing.domain.model import Category, Outcome
    from billing.storage.circuit_row import load_circuit
    from billing.storage.tables import Event

    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    policy = load_policy(FAST_POLICY)
    outage = Outcome(category=Category.TRANSIENT, reason="system_error")
    db = Database(pg_url)
    charger = Charger(db, FakeGateway(), policy, clock=clock, outage_threshold=8)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def report() -> None:
        try:
            barrier.wait()
            charger.settlement.update_circuit(outage, clock())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.transaction() as session:
        circuit = load_circuit(session)
        pauses = session.scalars(select(Event.kind).where(Event.kind == "charging_paused")).all()
    assert not circuit.allows_charging(clock())
    assert circuit.consecutive_failures == 8 and circuit.trips == 1
    assert list(pauses) == ["charging_paused"]
    db.dispose()
