"""The use cases wired together on one database, with a fake gateway, a recording queue
and a manual clock: what unit tests drive instead of real workers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher


@dataclass
class ServiceWorld:
    db: Database
    clock: ManualClock
    gateway: FakeGateway
    dispatcher: RecordingDispatcher
    charger: Charger
    scheduler: Scheduler

    def work(self) -> None:
        """Run what the queue holds, like a worker would, until it is empty."""
        while self.dispatcher.charges or self.dispatcher.reconciles:
            charges, self.dispatcher.charges = self.dispatcher.charges, []
            reconciles, self.dispatcher.reconciles = self.dispatcher.reconciles, []
            for attempt_id in charges:
                self.charger.charge(attempt_id)
            for attempt_id in reconciles:
                self.charger.reconcile(attempt_id)

    def tick(self, seconds: float = 0) -> None:
        """Let time pass, make a scheduler pass, and work off the queue."""
        self.clock.advance(seconds=seconds)
        self.scheduler.run_pass()
        self.work()

    def sub(self, sub_id: int) -> Subscription:
        with self.db.transaction() as s:
            return s.get_one(Subscription, sub_id)

    def invoices(self, sub_id: int) -> list[Invoice]:
        with self.db.transaction() as s:
            return list(
                s.scalars(
                    select(Invoice).where(Invoice.subscription_id == sub_id).order_by(Invoice.id)
                )
            )

    def attempts(self, sub_id: int) -> list[ChargeAttempt]:
        with self.db.transaction() as s:
            return list(
                s.scalars(
                    select(ChargeAttempt)
                    .where(ChargeAttempt.subscription_id == sub_id)
                    .order_by(ChargeAttempt.id)
                )
            )
