"""The sandbox as a two-phase merchant's gateway (deposit.do, reverse.do of a hold) and
decline.do of a stuck order, spoken to by our own client over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from billing.gateway.classify import classify_status
from billing.gateway.classify_orders import OrderCall, classify_order_call
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest, DeclineRequest, DepositRequest, ReverseRequest
from billing.sandbox import SandboxConfig, SandboxServer


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[SandboxServer, GatewayClient]]:
    with SandboxServer(SandboxConfig(two_phase=True)) as server:
        config = GatewayConfig(
            base_url=server.url, username="sandbox", password=SecretStr("sandbox")
        )
        with GatewayClient(config) as client:
            yield server, client


def _charge(client: GatewayClient, number: str, binding: str) -> str:
    client.charge(ChargeRequest(number, binding, 1000, "643"))
    status = classify_status(client.order_status(order_number=number))
    assert status.order_id is not None
    return status.order_id


def test_an_approval_is_held_until_deposit_captures_it(
    gateway: tuple[SandboxServer, GatewayClient],
) -> None:
    server, client = gateway
    order_id = _charge(client, "2p-1", "approve-2p1")
    assert classify_status(client.order_status(order_number="2p-1")).reason == "held"
    answer = classify_order_call(client.deposit(DepositRequest(order_id)))
    assert answer.result is OrderCall.ACCEPTED
    assert classify_status(client.order_status(order_number="2p-1")).is_paid
    again = classify_order_call(client.deposit(DepositRequest(order_id)))
    assert again.result is OrderCall.REFUSED and again.moved_on  # already captured
    assert [o.state.value for o in server.ledger.orders() if o.order_number == "2p-1"] == [
        "DEPOSITED"
    ]


def test_a_hold_is_released_by_reverse_and_a_holdrefuse_order_refuses_its_first_capture(
    gateway: tuple[SandboxServer, GatewayClient],
) -> None:
    _, client = gateway
    order_id = _charge(client, "2p-2", "holdrefuse-2p2")
    first = classify_order_call(client.deposit(DepositRequest(order_id)))
    assert first.result is OrderCall.REFUSED
    assert classify_status(client.order_status(order_number="2p-2")).reason == "held"
    released = classify_order_call(client.reverse(ReverseRequest(order_id)))
    assert released.result is OrderCall.ACCEPTED
    assert classify_status(client.order_status(order_number="2p-2")).reason == "reversed"


def test_decline_makes_a_stuck_order_final_and_refuses_a_paid_one(
    gateway: tuple[SandboxServer, GatewayClient],
) -> None:
    _, client = gateway
    _charge(client, "2p-3", "stuck-2p3")
    assert classify_status(client.order_status(order_number="2p-3")).reason == "pending"
    done = classify_order_call(client.decline(DeclineRequest(order_number="2p-3")))
    assert done.result is OrderCall.ACCEPTED
    status = classify_status(client.order_status(order_number="2p-3"))
    assert status.order_status == 6 and status.action_code == 4005
    # the same binding's next order approves (held here), and cannot be declined
    _charge(client, "2p-4", "stuck-2p3")
    refused = classify_order_call(client.decline(DeclineRequest(order_number="2p-4")))
    assert refused.result is OrderCall.REFUSED and refused.moved_on
