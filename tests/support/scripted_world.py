"""A service world whose gateway answers from a script: for tests of unusual answers.

``ScriptedGateway.script`` (orderNumber, amount, currency, description) may return a
gateway result (the answer to recurrentPayment.do) or None (the fake bank's usual
behaviour by binding prefix). Orders the script registers go into ``orders`` so that
status queries see them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billing.domain.dunning_policy import DunningPolicy
from billing.domain.policy_file import load_policy
from billing.gateway.port import ChargeRequest
from billing.gateway.results import GatewayResult
from tests.support.fakes import FakeGateway
from tests.support.world import FAST_POLICY, ServiceWorld, sqlite_url

Script = Callable[[str, int, str, str | None], GatewayResult | None]


class ScriptedGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.script: Script | None = None
        self.sent: list[dict[str, Any]] = []

    def charge(self, request: ChargeRequest) -> GatewayResult:
        number, amount, currency = request.order_number, request.amount, request.currency
        self.sent.append({"order_number": number, "amount": amount, "currency": currency})
        if self.script is not None:
            answer = self.script(number, amount, currency, request.description)
            if answer is not None:
                self.payment_calls.append(number)
                return answer
        return super().charge(request)

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


def make_world(
    tmp_path: Path, policy: DunningPolicy | None = None, *, outage_threshold: int = 3
) -> ScriptedWorld:
    return ScriptedWorld.build(
        sqlite_url(tmp_path),
        policy=policy or load_policy(FAST_POLICY),
        gateway=ScriptedGateway(),
        stale_sending_after=30,
        circuit_outage_threshold=outage_threshold,
        scheduler_batch_size=7,
        requeue_after=60,
    )
