"""The sandbox's request log (``GET /sandbox/requests``): what a benchmark reads to check
the calls per second the gateway saw, and the per-binding order count it charges with."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from billing.sandbox import Ledger, SandboxServer
from billing.sandbox import ledger as ledger_module

AUTH = {"userName": "sandbox", "password": "sandbox"}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    server.ledger.reset()
    with httpx.Client(base_url=server.root_url, timeout=5) as http:
        yield http


def _pay(http: httpx.Client, number: str, binding: str = "approve-1") -> dict[str, object]:
    body = {**AUTH, "orderNumber": number, "bindingId": binding, "amount": 100}
    return dict(http.post("/payment/rest/recurrentPayment.do", json=body).json())


def _requests(http: httpx.Client, **params: object) -> list[list[object]]:
    response = http.get("/sandbox/requests", params=params)
    assert response.status_code == 200
    return list(response.json()["requests"])


def test_every_gateway_call_is_listed_with_its_time_and_method(client: httpx.Client) -> None:
    before = int(time.time() * 1000)
    _pay(client, "REQ-1")
    _pay(client, "REQ-1")  # a duplicate orderNumber is refused, yet it was a call
    client.post("/payment/rest/getOrderStatusExtended.do", data={**AUTH, "orderNumber": "REQ-1"})
    client.post("/payment/rest/refund.do", data={**AUTH, "orderNumber": "REQ-1"})
    client.post("/payment/rest/reverse.do", data={**AUTH, "orderNumber": "nope"})
    client.get("/sandbox/ledger")  # controls are not gateway calls
    after = int(time.time() * 1000)

    calls = _requests(client)

    assert [method for _, method in calls] == [
        "recurrentPayment.do",
        "recurrentPayment.do",
        "getOrderStatusExtended.do",
        "refund.do",
        "reverse.do",
    ]
    assert all(before <= int(str(ms)) <= after for ms, _ in calls)


def test_since_keeps_only_later_calls_and_reset_forgets_them(client: httpx.Client) -> None:
    _pay(client, "OLD-1")
    time.sleep(0.01)
    since = int(time.time() * 1000)
    _pay(client, "NEW-1")

    assert [m for _, m in _requests(client, since=since)] == ["recurrentPayment.do"]
    client.post("/sandbox/reset")
    assert _requests(client) == []


def test_a_since_that_is_not_milliseconds_is_a_clear_400(client: httpx.Client) -> None:
    response = client.get("/sandbox/requests", params={"since": "yesterday"})

    assert response.status_code == 400
    assert "since must be epoch milliseconds" in response.json()["error"]


def test_the_log_keeps_only_the_latest_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "REQUEST_LOG_SIZE", 3)
    ledger = Ledger()
    for ms in range(5):
        ledger.record_request("recurrentPayment.do", ms)

    assert [ms for ms, _ in ledger.requests()] == [2, 3, 4]


def test_recover_bindings_still_count_their_orders_and_reset_starts_over(
    client: httpx.Client,
) -> None:
    assert _pay(client, "R-1", "recover2-a")["success"] is False
    assert _pay(client, "R-2", "recover2-b")["success"] is False  # another card
    assert _pay(client, "R-3", "recover2-a")["success"] is False
    assert _pay(client, "R-4", "recover2-a")["success"] is True
    client.post("/sandbox/reset")
    assert _pay(client, "R-5", "recover2-a")["success"] is False
