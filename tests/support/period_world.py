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
from billing.storage.tables import Event, Subscription
from tests.support.world import FAST_POLICY, ServiceWorld, sqlite_url


@dataclass
class PeriodWorld(ServiceWorld):
    def subscribe(self, schedule: str, timezone: str, **kw: Any) -> int:  # type: ignore[override]
        """Starting at its schedule's next time (``start_at`` None) unless ``kw`` says else."""
        binding = kw.pop("binding", "approve-1")
        fields = {"start_at": None, **kw}
        return super().subscribe(binding, schedule=schedule, timezone=timezone, **fields)

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
    world = PeriodWorld.build(sqlite_url(tmp_path), policy=policy or load_policy(FAST_POLICY))
    world.clock.now = start
    try:
        yield world
    finally:
        world.db.dispose()
