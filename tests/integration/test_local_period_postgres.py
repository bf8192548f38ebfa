"""One local period, one invoice, on real PostgreSQL: migration 0004's UNIQUE
(subscription_id, local_period) and the scheduler's ON CONFLICT DO NOTHING (unnest path)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, update

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.services.actions.subscriptions import SubscriptionActions
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.database import Database
from billing.storage.tables import Event, Invoice, Subscription
from tests.support.fakes import ManualClock, RecordingDispatcher

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"


def T(*parts: int) -> datetime:
    year, month, day, *rest = parts
    return datetime(year, month, day, *rest, tzinfo=UTC)


def test_the_local_period_constraint_exists_after_migration(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        with db.transaction() as session:
            inspector = inspect(session.connection())
            uniques = {
                u["name"]: u["column_names"] for u in inspector.get_unique_constraints("invoices")
            }
        assert uniques["uq_invoices_local_period"] == ["subscription_id", "local_period"]
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("cron", "zone", "first", "repeat", "key"),
    [
        ("30 2 * * *", "Europe/Berlin", T(2026, 10, 25, 0, 30), T(2026, 10, 25, 1, 30),
         "2026-10-25T02:30"),
        ("30 1 * * 0", "America/New_York", T(2026, 11, 1, 5, 30), T(2026, 11, 1, 6, 30),
         "2026-11-01T01:30"),
    ],
)  # fmt: skip
def test_many_subscriptions_in_a_repeated_hour_get_one_invoice_each(
    pg_url: str, cron: str, zone: str, first: datetime, repeat: datetime, key: str
) -> None:
    clock = ManualClock(first)
    db = Database(pg_url)
    try:
        subscriptions = SubscriptionActions(db, clock=clock)
        for n in range(40):
            subscriptions.create(
                NewSubscription(f"c{n}", f"approve-{n}", 1000, cron, timezone=zone, start_at=first),
                actor="crm",
                reason="signup",
            )
        scheduler = Scheduler(
            db, RecordingDispatcher(), load_policy(FAST_POLICY), clock=clock, batch_size=16
        )
        scheduler.run_pass()
        # as if an older scheduler had advanced every subscription to the repeat of that time
        with db.transaction() as session:
            session.execute(update(Subscription).values(next_charge_at=repeat))
        clock.now = repeat
        report = scheduler.run_pass()
        assert report.invoices_opened == 0
        with db.transaction() as session:
            rows = session.execute(select(Invoice.period_start, Invoice.local_period)).all()
            advanced = set(session.scalars(select(Subscription.next_charge_at)))
        assert sorted(rows) == [(first, key)] * 40
        assert advanced == {next(iter(advanced))} and min(advanced) > repeat
    finally:
        db.dispose()


def test_a_late_pass_opens_the_latest_period_and_records_the_skipped_ones(pg_url: str) -> None:
    clock = ManualClock(T(2026, 12, 1, 5))
    db = Database(pg_url)
    try:
        subscriptions = SubscriptionActions(db, clock=clock)
        for n in range(30):
            subscriptions.create(
                NewSubscription(
                    f"c{n}", f"approve-{n}", 1000, "0 * * * *", timezone="UTC",
                    start_at=T(2026, 12, 1, 0),
                ), actor="crm", reason="signup"
            )  # fmt: skip
        scheduler = Scheduler(
            db, RecordingDispatcher(), load_policy(FAST_POLICY), clock=clock, batch_size=7
        )
        report = scheduler.run_pass()
        assert (report.invoices_opened, report.attempts_created) == (30, 30)
        with db.transaction() as session:
            periods = set(session.scalars(select(Invoice.period_start)))
            skipped = session.scalars(select(Event.reason).where(Event.kind == "period_skipped"))
            assert len(list(skipped)) == 30 * 5
        assert periods == {T(2026, 12, 1, 5)}
    finally:
        db.dispose()
