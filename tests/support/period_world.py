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

from billing.domain.dunning_policy import DunningPolicy
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.storage.tables import Event, Subscription
from tests.support.world import ServiceWorld

FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"


@dataclass
class PeriodWorld(ServiceWorld):
    def subscribe(self, schedule: str, timezone: str, **kw: Any) -> int:
        new = NewSubscription(
            customer_id=kw.pop("customer_id", "cust-1"),
            binding_id=kw.pop("binding", "approve-1"),
            amount=kw.pop("amount", 49900),
            schedule=schedule,
            timezone=timezone,
            start_at=kw.pop("start_at", None),
        )
        return int(
            self.app.actions.subscriptions.create(new, actor="crm", reason="signup").body["id"]
        )

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
    world = PeriodWorld.build(
        f"sqlite:///{tmp_path / 'billing.db'}", policy=policy or load_policy(FAST_POLICY)
    )
    world.clock.now = start
    try:
        yield world
    finally:
        world.db.dispose()
