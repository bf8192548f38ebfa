"""The use cases wired by :func:`billing.bootstrap.build_app` on one database, with a fake
gateway, a recording queue and a manual clock: what unit tests drive instead of real
workers. The graph is the production one; only the edges are doubles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import select

from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DunningPolicy
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.settings import Settings
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

#: The dunning policy most service tests run on: the default ladder in seconds, not days.
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"

#: Gateway timeouts short enough for a 30 s stale-send window (settings check the budget).
FAST_TIMEOUTS: dict[str, Any] = {
    "gateway_connect_timeout": 1.0,
    "gateway_read_timeout": 5.0,
    "gateway_write_timeout": 1.0,
    "gateway_pool_timeout": 1.0,
}


def sqlite_url(folder: Path) -> str:
    """A file database of its own in ``folder`` (pytest's ``tmp_path``)."""
    return f"sqlite:///{folder / 'billing.db'}"


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

    @classmethod
    def fast(
        cls,
        database_url: str,
        *,
        gateway: FakeGateway | None = None,
        **settings: Any,
    ) -> Self:
        """On :data:`FAST_POLICY` with a 30 s stale-send window (override in ``settings``):
        the world most service tests use. ``with World.fast(url) as w:`` disposes of it."""
        settings = {"stale_sending_after": 30, **settings}
        return cls.build(database_url, policy=load_policy(FAST_POLICY), gateway=gateway, **settings)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.db.dispose()

    def subscribe(self, binding: str = "approve-1", **fields: Any) -> int:
        """A subscription created as the SaaS backend would (actor ``crm``), starting now:
        49900 monthly at 03:00 on the 1st unless ``fields`` (of NewSubscription) say else."""
        values: dict[str, Any] = {
            "customer_id": "cust-1",
            "amount": 49900,
            "schedule": "0 3 1 * *",
            "start_at": self.clock(),
            **fields,
        }
        new = NewSubscription(binding_id=binding, **values)
        created = self.app.actions.subscriptions.create(new, actor="crm", reason="signup")
        return int(created.body["id"])

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

    def queued_charge(self) -> int:
        """A scheduler pass, and the one charge it queued, taken off the queue (the worker
        that would run it has not yet)."""
        self.scheduler.run_pass()
        [attempt_id] = self.dispatcher.charges
        self.dispatcher.charges.clear()
        return attempt_id

    def sent_without_answer(self) -> int:
        """The one charge a scheduler pass queues, as if its worker was killed mid-send:
        ``sending`` since now, the request never answered. Its attempt id."""
        attempt_id = self.queued_charge()
        with self.db.transaction() as s:
            attempt = s.get_one(ChargeAttempt, attempt_id)
            attempt.state, attempt.sent_at = "sending", self.clock()
        return attempt_id

    def late_deposit(self, attempt: ChargeAttempt, order_id: str) -> None:
        """The bank charged this attempt's order after all: a request that arrived late."""
        self.gateway.orders[attempt.order_number] = {
            "orderStatus": 2,
            "orderId": order_id,
            "amount": attempt.amount,
            "actionCode": 0,
        }

    def waiting_for_operator(self) -> tuple[int, ChargeAttempt]:
        """A subscription whose first charge stayed pending at the gateway past the policy's
        ``give_up_after`` (1m on :data:`FAST_POLICY`): its attempt waits for an operator."""
        sub_id = self.subscribe("pending-1")
        self.tick()
        for _ in range(40):
            self.tick(2)
        [attempt] = self.attempts(sub_id)
        assert attempt.state == "needs_operator"
        return sub_id, attempt

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
