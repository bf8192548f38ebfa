"""The callback tests' world (SQLite, one charge attempt, a recording dispatcher) for new
test files; the same set-up as the ``world`` fixture of test_callback_app.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from billing.policy import load_policy
from billing.services.scheduler import Scheduler
from billing.services.subscriptions import NewSubscription, Subscriptions
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt
from tests.fakes import ManualClock
from tests.unit.test_callback_app import FAST_POLICY, FlakyDispatcher, World


def callback_world(tmp_path: Path) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'billing.db'}")
    db.upgrade()
    clock = ManualClock()
    dispatcher = FlakyDispatcher()
    Subscriptions(db, clock=clock).create(
        NewSubscription(
            customer_id="cust-1",
            binding_id="approve-1",
            amount=49900,
            schedule="0 3 1 * *",
            start_at=clock(),
        )
    )
    Scheduler(db, dispatcher, load_policy(FAST_POLICY), clock=clock).run_pass()
    with db.transaction() as s:
        [attempt] = s.scalars(select(ChargeAttempt)).all()
    dispatcher.charges.clear()
    yield World(db, clock, dispatcher, attempt)
    db.dispose()
