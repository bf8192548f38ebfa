"""A service world whose gateway answers from a script: for tests of unusual answers.

``ScriptedGateway.script`` (orderNumber, amount, currency, description) may return a
gateway result (the answer to recurrentPayment.do) or None (the fake bank's usual
behaviour by binding prefix). Orders the script registers go into ``orders`` so that
status queries see them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from billing.gateway.results import GatewayResult
from billing.policy import DunningPolicy, load_policy
from billing.services.charging import Charger
from billing.services.operations import Operations
from billing.services.ports import RecordingDispatcher
from billing.services.scheduler import Scheduler
from billing.services.subscriptions import NewSubscription, Subscriptions
from billing.storage.database import Database
from tests.fakes import FakeGateway, ManualClock
from tests.world import ServiceWorld

FAST_POLICY = Path(__file__).resolve().parents[1] / "config" / "dunning-fast.toml"
Script = Callable[[str, int, str, str | None], GatewayResult | None]


class ScriptedGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.script: Script | None = None
        self.sent: list[dict[str, Any]] = []

    def recurrent_payment(
        self,
        *,
        order_number: str,
        binding_id: str,
        amount: int,
        currency: str,
        description: str | None = None,
        client_id: str | None = None,
        language: str | None = None,
    ) -> GatewayResult:
        self.sent.append({"order_number": order_number, "amount": amount, "currency": currency})
        if self.script is not None:
            answer = self.script(order_number, amount, currency, description)
            if answer is not None:
                self.payment_calls.append(order_number)
                return answer
        return super().recurrent_payment(
            order_number=order_number,
            binding_id=binding_id,
            amount=amount,
            currency=currency,
            description=description,
            client_id=client_id,
            language=language,
        )

    def register(self, order_number: str, amount: int, status: int, action: int) -> str:
        """Record an order the way the bank would keep it; returns its orderId."""
        order_id = f"gw-{order_number}"
        self.orders[order_number] = {
            "orderStatus": status,
            "orderId": order_id,
            "amount": amount,
            "actionCode": action,
        }
        return order_id


@dataclass
class ScriptedWorld(ServiceWorld):
    gateway: ScriptedGateway
    subscriptions: Subscriptions
    operations: Operations

    def subscribe(self, binding: str = "approve-1", **kw: Any) -> int:
        new = NewSubscription(
            customer_id=str(kw.pop("customer_id", "cust-1")),
            binding_id=binding,
            amount=int(kw.pop("amount", 49900)),
            currency=str(kw.pop("currency", "643")),
            description=kw.pop("description", None),
            schedule=str(kw.pop("schedule", "0 3 1 * *")),
            start_at=self.clock(),
        )
        return int(self.subscriptions.create(new)["id"])


def make_world(
    tmp_path: Path, policy: DunningPolicy | None = None, *, outage_threshold: int = 3
) -> ScriptedWorld:
    db = Database(f"sqlite:///{tmp_path / 'billing.db'}")
    db.upgrade()
    clock = ManualClock()
    gateway = ScriptedGateway()
    dispatcher = RecordingDispatcher()
    policy = policy or load_policy(FAST_POLICY)
    charger = Charger(
        db,
        gateway,
        policy,
        clock=clock,
        stale_sending_after=timedelta(seconds=30),
        outage_threshold=outage_threshold,
    )
    scheduler = Scheduler(
        db,
        dispatcher,
        policy,
        gateway=gateway,
        clock=clock,
        batch_size=7,
        requeue_after=timedelta(seconds=60),
        stale_sending_after=timedelta(seconds=30),
    )
    operations = Operations(db, gateway=gateway, dispatcher=dispatcher, clock=clock, policy=policy)
    return ScriptedWorld(
        db,
        clock,
        gateway,
        dispatcher,
        charger,
        scheduler,
        Subscriptions(db, clock=clock),
        operations,
    )
