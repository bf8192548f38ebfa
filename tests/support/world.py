"""The use cases wired by :func:`billing.bootstrap.build_app` on one database, with a fake
gateway, a recording queue and a manual clock: what unit tests drive instead of real
workers. The graph is the production one; only the edges are doubles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import select

from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DunningPolicy
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.settings import Settings
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

#: Gateway timeouts short enough for a 30 s stale-send window (settings check the budget).
FAST_TIMEOUTS: dict[str, Any] = {
    "gateway_connect_timeout": 1.0,
    "gateway_read_timeout": 5.0,
    "gateway_write_timeout": 1.0,
    "gateway_pool_timeout": 1.0,
}


def build_test_app(
    database_url: str,
    *,
    policy: DunningPolicy,
    clock: ManualClock,
    gateway: FakeGateway,
    dispatcher: RecordingDispatcher,
    **settings: Any,
) -> App:
    """The production graph on ``database_url`` (migrated here) with the given doubles."""
    values = {"database_url": database_url, "redis_url": None, **FAST_TIMEOUTS, **settings}
    app = build_app(
        Settings(**values),
        gateway=gateway,
        clock=clock,
        policy=policy,
        dispatcher=dispatcher,
    )
    app.db.upgrade()
    return app


@dataclass
class ServiceWorld:
    app: App
    clock: ManualClock
    gateway: FakeGateway
    dispatcher: RecordingDispatcher

    @classmethod
    def build(
        cls,
        database_url: str,
        *,
        policy: DunningPolicy,
        gateway: FakeGateway | None = None,
        **settings: Any,
    ) -> Self:
        clock, dispatcher = ManualClock(), RecordingDispatcher()
        gateway = gateway or FakeGateway()
        app = build_test_app(
            database_url,
            policy=policy,
            clock=clock,
            gateway=gateway,
            dispatcher=dispatcher,
            **settings,
        )
        return cls(app, clock, gateway, dispatcher)

    @property
    def db(self) -> Database:
        return self.app.db

    @property
    def charger(self) -> Charger:
        return self.app.charger

    @property
    def scheduler(self) -> Scheduler:
        return self.app.scheduler

    def work(self) -> None:
        """Run what the queue holds, like a worker would (charges by the batch), until it
        is empty."""
        while self.dispatcher.charges or self.dispatcher.reconciles:
            charges, self.dispatcher.charges = self.dispatcher.charges, []
            reconciles, self.dispatcher.reconciles = self.dispatcher.reconciles, []
            if charges:  # as the workers do: one batch message per chunk of ids
                self.app.batch_charger.charge_batch(charges)
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
