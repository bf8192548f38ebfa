"""Outages: the broker or the database goes away and comes back; nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.errors import StorageError
from billing.queue.dramatiq import DramatiqDispatcher, build_broker, declare_actors
from billing.services.actions.subscriptions import SubscriptionActions
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt
from tests.e2e.conftest import free_port
from tests.support.fakes import ManualClock

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"


def _dispatcher(url: str) -> tuple[DramatiqDispatcher, object]:
    broker = build_broker(url)
    actors = declare_actors(broker, lambda: None, queue_name="billing")  # type: ignore[arg-type,return-value]
    return DramatiqDispatcher(actors), broker


def test_charges_that_could_not_be_enqueued_are_enqueued_after_redis_returns(
    pg_url: str, redis_url: str
) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    db = Database(pg_url)
    try:
        _enqueue_after_outage(db, clock, redis_url)
    finally:
        db.dispose()


def _enqueue_after_outage(db: Database, clock: ManualClock, redis_url: str) -> None:
    SubscriptionActions(db, clock=clock).create(
        NewSubscription(
            customer_id="c1",
            binding_id="approve-1",
            amount=100,
            schedule="0 3 1 * *",
            start_at=clock(),
        ),
        actor="crm",
        reason="signup",
    )
    policy = load_policy(FAST_POLICY)
    dead, dead_broker = _dispatcher(f"redis://127.0.0.1:{free_port()}/0")
    report = Scheduler(db, dead, policy, clock=clock).run_pass()  # Redis is "down"
    assert report.attempts_created == 1
    assert report.enqueue_failures == 1
    with db.transaction() as session:
        [attempt] = session.scalars(select(ChargeAttempt)).all()
        assert attempt.state == "pending" and attempt.enqueued_at is None
    dead_broker.close()  # type: ignore[attr-defined]

    live, live_broker = _dispatcher(redis_url)
    clock.advance(seconds=1)
    report = Scheduler(db, live, policy, clock=clock).run_pass()
    assert report.requeued == 1 and report.enqueue_failures == 0
    queued = live_broker.client.llen("billing:billing")  # type: ignore[attr-defined]
    assert queued == 1
    live_broker.close()  # type: ignore[attr-defined]


def test_a_database_outage_is_a_retryable_storage_error_not_a_crash() -> None:
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    clock = ManualClock()
    scheduler = Scheduler(
        db,
        _dispatcher("redis://127.0.0.1:1/0")[0],
        load_policy(FAST_POLICY),
        clock=clock,
        requeue_after=timedelta(seconds=1),
    )
    with pytest.raises(StorageError) as caught:
        scheduler.run_pass()
    assert caught.value.should_retry
    db.dispose()
