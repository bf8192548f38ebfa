"""A service world for billing-period tests: the real scheduler pass, the real charger and
the operations use cases on SQLite, a fake gateway and a manual clock set by the test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from billing.policy import DunningPolicy, load_policy
from billing.services.charging import Charger
from billing.services.operations import Operations
from billing.services.ports import RecordingDispatcher
from billing.services.scheduler import Scheduler
from billing.services.subscriptions import NewSubscription
from billing.storage.database import Database
from billing.storage.tables import Event, Subscription
from tests.fakes import FakeGateway, ManualClock
from tests.world import ServiceWorld

FAST_POLICY = Path(__file__).resolve().parents[1] / "config" / "dunning-fast.toml"


@dataclass
class PeriodWorld(ServiceWorld):
    ops: Operations

    def subscribe(self, schedule: str, timezone: str, **kw: Any) -> int:
        new = NewSubscription(
            customer_id=kw.pop("customer_id", "cust-1"),
            binding_id=kw.pop("binding", "approve-1"),
            amount=kw.pop("amount", 49900),
            schedule=schedule,
            timezone=timezone,
            start_at=kw.pop("start_at", None),
        )
        return int(self.ops.create_subscription(new, actor="crm", reason="signup").body["id"])

    def run_until(self, end: datetime, step: timedelta = timedelta(minutes=30)) -> None:
        """Scheduler passes every ``step`` (and the queue worked off) until ``end``."""
        while self.clock() < end:
            self.tick(seconds=step.total_seconds())

    def local_periods(self, sub_id: int, zone: str) -> list[str]:
        """The invoices' periods on the customer's wall clock, with their UTC offset."""
        return [
            i.period_start.astimezone(ZoneInfo(zone)).isoformat(timespec="minutes")
            for i in self.invoices(sub_id)
        ]

    def events(self, kind: str, sub_id: int) -> list[Event]:
        with self.db.transaction() as s:
            query = select(Event).where(Event.kind == kind, Event.subscription_id == sub_id)
            return list(s.scalars(query.order_by(Event.id)))

    def set_next_charge(self, sub_id: int, when: datetime) -> None:
        with self.db.transaction() as s:
            s.get_one(Subscription, sub_id).next_charge_at = when


@contextmanager
def period_world(
    tmp_path: Path, start: datetime, policy: DunningPolicy | None = None
) -> Iterator[PeriodWorld]:
    db = Database(f"sqlite:///{tmp_path / 'billing.db'}")
    db.upgrade()
    clock = ManualClock(start)
    gateway = FakeGateway()
    dispatcher = RecordingDispatcher()
    policy = policy or load_policy(FAST_POLICY)
    charger = Charger(db, gateway, policy, clock=clock)
    scheduler = Scheduler(db, dispatcher, policy, gateway=gateway, clock=clock)
    ops = Operations(db, gateway=gateway, policy=policy, dispatcher=dispatcher, clock=clock)
    try:
        yield PeriodWorld(db, clock, gateway, dispatcher, charger, scheduler, ops)
    finally:
        db.dispose()
