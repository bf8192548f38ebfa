"""The sandbox gateway: real loopback HTTP for the transport cases, ASGI for the rest."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from billing.errors import ConfigurationError
from billing.sandbox import Ledger, Order, OrderState, SandboxConfig, SandboxServer, create_app
from billing.sandbox.behaviours import Fault, Kind, behaviour_for, draw_fault

AUTH = {"userName": "sandbox", "password": "sandbox"}
BASE = "/payment/rest"
PAY = f"{BASE}/recurrentPayment.do"
STATUS = f"{BASE}/getOrderStatusExtended.do"


def charge(number: str = "INV-1", binding: str = "approve-1", **extra: Any) -> dict[str, Any]:
    return {**AUTH, "orderNumber": number, "bindingId": binding, "amount": 12300, **extra}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as running:
        yield running


@pytest.fixture
def gateway(server: SandboxServer) -> Iterator[tuple[SandboxServer, httpx.Client]]:
    server.ledger.reset()
    with httpx.Client(timeout=5) as client:
        yield server, client


class AsgiClient:
    """A synchronous httpx client calling the app in-process (starlette's TestClient
    warns about httpx, which ``filterwarnings = error`` turns into a failure)."""

    def __init__(self, app: ASGIApp) -> None:
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://sandbox")

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.post(url, **kwargs))

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


def make_client(**config: Any) -> tuple[AsgiClient, Ledger]:
    ledger = Ledger()
    return AsgiClient(create_app(SandboxConfig(**config), ledger=ledger)), ledger


@pytest.fixture
def asgi() -> Iterator[tuple[AsgiClient, Ledger]]:
    client, ledger = make_client(slow_delay=0.05)
    with client:
        yield client, ledger


# ---------------------------------------------------------------- over real HTTP


def test_approve_over_http_matches_the_documented_success_body(
    gateway: tuple[SandboxServer, httpx.Client],
) -> None:
    server, client = gateway
    assert server.url == f"http://127.0.0.1:{server.port}/payment/rest"
    params = charge(currency="810", description="Plan", additionalParameters={"plan": "pro"})
    body = client.post(f"{server.url}/recurrentPayment.do", json=params).json()

    assert body["success"] is True
    status = body["orderStatus"]
    assert status["errorCode"] == "0"
    assert (status["orderNumber"], status["orderStatus"], status["actionCode"]) == ("INV-1", 2, 0)
    assert (status["amount"], status["currency"]) == (12300, "810")
    assert status["paymentAmountInfo"]["paymentState"] == "DEPOSITED"
    assert status["cardAuthInfo"]["pan"].startswith("411111**")
    assert status["merchantOrderParams"] == [{"name": "plan", "value": "pro"}]
    ledger = client.get(f"{server.root_url}/sandbox/ledger").json()["orders"]
    assert [o["orderId"] for o in ledger] == [body["data"]["orderId"]]
    assert ledger[0]["state"] == "DEPOSITED"


def test_reused_order_number_is_refused_without_a_second_charge(
    gateway: tuple[SandboxServer, httpx.Client],
) -> None:
    server, client = gateway
    first = client.post(f"{server.url}/recurrentPayment.do", json=charge()).json()
    again = client.post(f"{server.url}/recurrentPayment.do", json=charge()).json()

    assert first["success"] is True
    assert again == {
        "error": {
            "code": "10",
            "description": "An order with this number has already been registered",
            "message": "An order with this number has already been registered.",
        },
        "success": False,
    }
    assert len(client.get(f"{server.root_url}/sandbox/ledger").json()["orders"]) == 1


def test_bad_credentials_over_http_are_refused_and_nothing_is_recorded(
    gateway: tuple[SandboxServer, httpx.Client],
) -> None:
    server, client = gateway
    wrong = charge(password="nope")
    response = client.post(f"{server.url}/recurrentPayment.do", json=wrong)

    assert response.status_code == 200
    assert response.json() == {
        "error": {"code": "5", "description": "Access denied", "message": "Access denied"},
        "success": False,
    }
    assert server.ledger.orders() == []


def test_timeout_after_charging_leaves_the_money_taken_and_the_server_responsive() -> None:
    with SandboxServer(SandboxConfig(timeout_delay=0.5)) as server, httpx.Client() as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(
                f"{server.url}/recurrentPayment.do",
                json=charge(binding="timeout-1"),
                timeout=httpx.Timeout(2.0, read=0.1),
            )
        # The hanging request does not block others.
        assert client.get(f"{server.root_url}/sandbox/health", timeout=0.4).json() == {"ok": True}
        deposited = client.get(f"{server.root_url}/sandbox/ledger?state=DEPOSITED").json()
        assert [o["orderNumber"] for o in deposited["orders"]] == ["INV-1"]
        started = time.monotonic()
    assert time.monotonic() - started < 1.5  # stop() cuts the hang short


def test_two_servers_get_distinct_free_ports() -> None:
    with SandboxServer() as one, SandboxServer() as two:
        assert one.port != two.port
        assert httpx.get(f"{two.root_url}/sandbox/health").json() == {"ok": True}


# ---------------------------------------------------------------- recurrentPayment.do (ASGI)


def test_form_encoded_charge_and_token_auth_are_accepted() -> None:
    client, ledger = make_client(token="t0k3n")
    with client:
        form = {"token": "t0k3n", "orderNumber": "F-1", "bindingId": "x", "amount": "500"}
        assert client.post(PAY, data=form).json()["success"] is True
        wrong = {**form, "orderNumber": "F-2", "token": "other"}
        assert client.post(PAY, data=wrong).json()["error"]["code"] == "5"
    assert [o.order_number for o in ledger.orders()] == ["F-1"]


@pytest.mark.parametrize(
    ("changes", "code", "text"),
    [
        ({"orderNumber": None}, "10", "Incorrect value of [orderNumber]"),
        ({"orderNumber": "N" * 33}, "10", "Incorrect value of [orderNumber]"),
        ({"amount": 0}, "5", "Invalid amount"),
        ({"amount": -100}, "5", "Invalid amount"),
        ({"amount": 12.5}, "5", "Invalid amount"),
        ({"amount": "12.50"}, "5", "Invalid amount"),
        ({"currency": "81"}, "10", "Incorrect value of [currency]"),
        ({"currency": "RUB"}, "10", "Incorrect value of [currency]"),
        ({"bindingId": None}, "2", "The binding is not found"),
    ],
)
def test_invalid_requests_are_refused_without_an_order(
    asgi: tuple[AsgiClient, Ledger], changes: dict[str, Any], code: str, text: str
) -> None:
    client, ledger = asgi
    params = {k: v for k, v in {**charge(), **changes}.items() if v is not None}
    body = client.post(PAY, json=params).json()
    assert body == {"error": {"code": code, "description": text, "message": text}, "success": False}
    assert ledger.orders() == []


@pytest.mark.parametrize(
    ("binding", "action_code"), [("insufficient-1", 116), ("EXPIRED-9", 101), ("stolen", 208)]
)
def test_issuer_decline_is_answered_with_an_error_and_recorded_as_declined(
    asgi: tuple[AsgiClient, Ledger], binding: str, action_code: int
) -> None:
    client, ledger = asgi
    body = client.post(PAY, json=charge(binding=binding)).json()

    assert body["success"] is False
    assert body["error"]["code"] == "1"
    assert body["orderStatus"]["orderStatus"] == 6
    assert body["orderStatus"]["actionCode"] == action_code
    status = client.post(STATUS, data={**AUTH, "orderId": body["data"]["orderId"]}).json()
    assert (status["orderStatus"], status["actionCode"]) == (6, action_code)
    assert status["paymentAmountInfo"]["paymentState"] == "DECLINED"
    assert ledger.deposited_count() == 0


def test_recover_binding_declines_n_times_then_approves(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, _ = asgi
    answers = [
        client.post(PAY, json=charge(f"R-{i}", "recover2-abc")).json()["success"] for i in range(4)
    ]
    assert answers == [False, False, True, True]


@pytest.mark.parametrize(
    ("binding", "code", "text"),
    [
        ("notfound-1", "2", "The binding is not found"),
        ("disabled-1", "5", "Using binding is disabled"),
        ("syserror-1", "7", "System error"),
    ],
)
def test_refusals_register_no_order(
    asgi: tuple[AsgiClient, Ledger], binding: str, code: str, text: str
) -> None:
    client, ledger = asgi
    body = client.post(PAY, json=charge(binding=binding)).json()
    assert body == {"error": {"code": code, "description": text, "message": text}, "success": False}
    status = client.post(STATUS, data={**AUTH, "orderNumber": "INV-1"}).json()
    assert status == {"errorCode": "6", "errorMessage": "Order not found"}
    assert ledger.orders() == []


@pytest.mark.parametrize(("binding", "http_status"), [("http500-1", 500), ("html-1", 200)])
def test_html_answers_register_no_order(
    asgi: tuple[AsgiClient, Ledger], binding: str, http_status: int
) -> None:
    client, ledger = asgi
    response = client.post(PAY, json=charge(binding=binding))
    assert response.status_code == http_status
    assert response.headers["content-type"].startswith("text/html")
    assert ledger.orders() == []


def test_flaky_binding_fails_then_the_retry_with_the_same_number_is_charged(
    asgi: tuple[AsgiClient, Ledger],
) -> None:
    client, ledger = asgi
    assert client.post(PAY, json=charge(binding="flaky-1")).status_code == 500
    assert client.post(PAY, json=charge(binding="flaky-1")).json()["success"] is True
    assert ledger.deposited_count() == 1


def test_zerodecline_says_success_but_the_order_is_declined(
    asgi: tuple[AsgiClient, Ledger],
) -> None:
    client, ledger = asgi
    body = client.post(PAY, json=charge(binding="zerodecline")).json()
    assert body["success"] is True
    assert body["orderStatus"]["orderStatus"] == 6
    assert ledger.deposited_count() == 0


def test_pending_order_is_deposited_after_the_configured_status_queries() -> None:
    client, ledger = make_client(pending_queries=1)
    with client:
        body = client.post(PAY, json=charge(binding="pending-1")).json()
        assert body["success"] is True
        assert body["orderStatus"]["orderStatus"] == 0
        query = {**AUTH, "orderNumber": "INV-1"}
        first = client.post(STATUS, data=query).json()
        second = client.post(STATUS, data=query).json()
    assert first["orderStatus"] == 0
    assert first["paymentAmountInfo"]["paymentState"] == "CREATED"
    assert (second["orderStatus"], second["actionCode"]) == (2, 0)
    assert ledger.deposited_count() == 1


def test_slow_binding_and_latency_delay_the_answer() -> None:
    client, _ = make_client(slow_delay=0.1, latency=0.05)
    with client:
        started = time.monotonic()
        assert client.post(PAY, json=charge(binding="slow-1")).json()["success"] is True
        assert time.monotonic() - started >= 0.15


def test_concurrent_charges_with_one_order_number_make_one_order() -> None:
    ledger = Ledger()
    app = create_app(SandboxConfig(latency=0.02), ledger=ledger)

    async def race() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            replies = await asyncio.gather(*(client.post(PAY, json=charge()) for _ in range(5)))
        return [r.json()["success"] for r in replies]

    assert sorted(asyncio.run(race())) == [False] * 4 + [True]
    assert len(ledger.orders()) == 1


def test_ledger_add_is_atomic_across_threads() -> None:
    ledger = Ledger()
    results: list[bool] = []

    def add(i: int) -> None:
        order = Order(f"id-{i}", "SAME", "b", 1, "643", OrderState.DEPOSITED, 0, 0)
        results.append(ledger.add(order))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert len(ledger.orders()) == 1


def test_fault_injection_is_deterministic_for_a_seed() -> None:
    def run() -> list[int]:
        client, _ = make_client(fault_rate=1.0, seed=7, slow_delay=0, timeout_delay=0)
        with client:
            return [client.post(PAY, json=charge(f"C-{i}")).status_code for i in range(12)]

    first = run()
    assert first == run()
    assert set(first) == {200, 500}
    assert draw_fault(random.Random(1), 0.0) is None
    assert draw_fault(random.Random(1), 1.0) in set(Fault)


# ---------------------------------------------------------------- getOrderStatusExtended.do


def test_status_query_matches_the_documented_shape(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, _ = asgi
    order_id = client.post(PAY, json=charge()).json()["data"]["orderId"]
    status = client.get(STATUS, params={**AUTH, "orderId": order_id}).json()

    assert (status["errorCode"], status["errorMessage"]) == ("0", "Success")
    assert (status["orderNumber"], status["orderStatus"], status["actionCode"]) == ("INV-1", 2, 0)
    assert status["attributes"] == [{"name": "mdOrder", "value": order_id}]
    assert status["bindingInfo"]["bindingId"] == "approve-1"
    assert status["paymentAmountInfo"] == {
        "paymentState": "DEPOSITED",
        "approvedAmount": 12300,
        "depositedAmount": 12300,
        "refundedAmount": 0,
    }


def test_status_query_errors(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, _ = asgi
    client.post(PAY, json=charge())
    unknown = {**AUTH, "orderId": "00000000-0000-0000-0000-000000000000", "orderNumber": "INV-1"}

    assert client.post(STATUS, data=unknown).json() == {
        "errorCode": "6",
        "errorMessage": "Unregistered orderId",
    }
    assert client.post(STATUS, json=AUTH).json() == {
        "errorCode": "5",
        "errorMessage": "[orderId] is empty",
    }
    assert client.post(STATUS, data={"orderNumber": "INV-1"}).json() == {
        "errorCode": "5",
        "errorMessage": "Access denied",
    }


# ---------------------------------------------------------------- controls and pure parts


def test_ledger_filter_and_reset_clear_orders_and_counters(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, _ = asgi
    client.post(PAY, json=charge("A", "recover1-x"))
    client.post(PAY, json=charge("B", "recover1-x"))
    deposited = client.get("/sandbox/ledger", params={"state": "DEPOSITED"}).json()["orders"]
    assert [o["orderNumber"] for o in deposited] == ["B"]
    assert client.post("/sandbox/reset").json() == {"ok": True}
    assert client.get("/sandbox/ledger").json() == {"orders": []}
    assert client.post(PAY, json=charge("A", "recover1-x")).json()["success"] is False
    assert client.get("/sandbox/health").json() == {"ok": True}


def test_behaviour_is_the_first_token_case_insensitive() -> None:
    assert behaviour_for("INSUFFICIENT-abc").kind is Kind.INSUFFICIENT
    assert behaviour_for("recover3-x").count == 3
    assert behaviour_for("b7f2c1").kind is Kind.APPROVE
    assert behaviour_for("").kind is Kind.APPROVE


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ConfigurationError):
        SandboxConfig(fault_rate=1.5)
    with pytest.raises(ConfigurationError):
        SandboxConfig(base_path="payment/rest/")
