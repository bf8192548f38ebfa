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
from billing.gateway.classify_action import RefundState, classify_action
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import RefundRequest, ReverseRequest
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


def test_faults_can_be_turned_off_while_the_sandbox_runs() -> None:
    client, ledger = make_client(fault_rate=1.0, seed=7, slow_delay=0, timeout_delay=0)
    with client:
        for bad in ({"fault_rate": 2}, {"rate": 0}, [0]):
            assert client.post("/sandbox/faults", json=bad).status_code == 400
        assert client.post("/sandbox/faults", json={"fault_rate": 0}).json() == {"fault_rate": 0.0}
        answers = [client.post(PAY, json=charge(f"C-{i}")) for i in range(12)]
    assert {a.status_code for a in answers} == {200}
    assert all(a.json()["success"] is True for a in answers)
    assert len(ledger.orders()) == 12


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


# ---------------------------------------------------------------- refund.do and reverse.do

REFUND = f"{BASE}/refund.do"
REVERSE = f"{BASE}/reverse.do"
OK = {"errorCode": "0", "errorMessage": "Success"}


def _paid(client: AsgiClient, number: str = "INV-1", binding: str = "approve-1") -> str:
    body = client.post(PAY, json=charge(number, binding)).json()
    order_id: str = body["data"]["orderId"]
    return order_id


def _status(client: AsgiClient, order_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.post(STATUS, data={**AUTH, "orderId": order_id}).json()
    return body


def test_full_refund_without_amount_leaves_the_order_refunded(
    asgi: tuple[AsgiClient, Ledger],
) -> None:
    client, ledger = asgi
    order_id = _paid(client)
    form = {**AUTH, "orderId": order_id, "externalRefundId": "rf-1"}

    assert client.post(REFUND, data=form).json() == OK
    status = _status(client, order_id)
    assert (status["orderStatus"], status["errorCode"]) == (4, "0")
    assert status["paymentAmountInfo"] == {
        "paymentState": "REFUNDED",
        "approvedAmount": 12300,
        "depositedAmount": 12300,
        "refundedAmount": 12300,
    }
    assert [(r["externalRefundId"], r["amount"]) for r in status["refunds"]] == [("rf-1", 12300)]
    [shown] = client.get("/sandbox/ledger", params={"state": "refunded"}).json()["orders"]
    assert (shown["state"], shown["orderStatus"], shown["refundedAmount"]) == ("REFUNDED", 4, 12300)
    assert ledger.deposited_count() == 1  # refunded, but charged once
    again = client.post(REFUND, data={**form, "externalRefundId": "rf-2"}).json()
    assert again["errorCode"] == "7" and "fully refunded" in again["errorMessage"]


def test_partial_refunds_then_the_rest_and_never_more_than_paid(
    asgi: tuple[AsgiClient, Ledger],
) -> None:
    client, _ = asgi
    order_id = _paid(client)
    first = {**AUTH, "orderId": order_id, "amount": 10000, "externalRefundId": "a"}

    assert client.post(REFUND, json=first).json() == OK
    status = _status(client, order_id)
    assert (status["orderStatus"], status["paymentAmountInfo"]["refundedAmount"]) == (4, 10000)
    too_much = client.post(REFUND, json={**first, "amount": 2301, "externalRefundId": "b"}).json()
    assert too_much["errorCode"] == "7"
    assert "2301" in too_much["errorMessage"] and "2300" in too_much["errorMessage"]
    assert _status(client, order_id)["paymentAmountInfo"]["refundedAmount"] == 10000
    # The whole order amount is "everything" only while nothing was refunded.
    whole = client.post(REFUND, json={**first, "amount": 12300, "externalRefundId": "c"}).json()
    assert whole["errorCode"] == "7"
    rest = {**AUTH, "orderNumber": "INV-1", "amount": "0", "externalRefundId": "d"}
    assert client.post(REFUND, data=rest).json() == OK
    status = _status(client, order_id)
    assert status["paymentAmountInfo"]["refundedAmount"] == 12300
    assert [(r["externalRefundId"], r["amount"]) for r in status["refunds"]] == [
        ("a", 10000),
        ("d", 2300),
    ]


def test_a_repeated_external_refund_id_answers_success_and_refunds_once(
    asgi: tuple[AsgiClient, Ledger],
) -> None:
    client, ledger = asgi
    order_id = _paid(client)
    form = {**AUTH, "orderId": order_id, "amount": "5000", "externalRefundId": "rf-same"}

    replies = [client.post(REFUND, data=form).json() for _ in range(3)]
    replies.append(client.post(REFUND, data={**form, "amount": "99999999"}).json())

    assert replies == [OK] * 4
    order = ledger.find_by_id(order_id)
    assert order is not None
    assert (order.refunded_amount, len(order.refunds)) == (5000, 1)
    # Without an externalRefundId every call is a new refund.
    bare = {**AUTH, "orderId": order_id, "amount": "1000"}
    assert [client.post(REFUND, data=bare).json() for _ in range(2)] == [OK, OK]
    assert _status(client, order_id)["paymentAmountInfo"]["refundedAmount"] == 7000


def test_concurrent_refunds_with_one_external_id_refund_once() -> None:
    ledger = Ledger()
    app = create_app(SandboxConfig(latency=0.02), ledger=ledger)

    async def race(order_id: str) -> list[Any]:
        form = {**AUTH, "orderId": order_id, "amount": "100", "externalRefundId": "x"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            replies = await asyncio.gather(*(client.post(REFUND, data=form) for _ in range(5)))
        return [r.json() for r in replies]

    with AsgiClient(app) as client:
        order_id = _paid(client)
    assert asyncio.run(race(order_id)) == [OK] * 5
    order = ledger.find_by_id(order_id)
    assert order is not None and order.refunded_amount == 100


@pytest.mark.parametrize(
    ("form", "code", "text"),
    [
        ({"orderId": "00000000-0000-0000-0000-000000000000"}, "6", "Unregistered orderId"),
        ({"orderNumber": "NOPE"}, "6", "Order not found"),
        ({}, "5", "[orderId] is empty"),
        ({"orderNumber": "INV-1", "amount": "-5"}, "5", "Invalid amount"),
        ({"orderNumber": "INV-1", "amount": "12.5"}, "5", "Invalid amount"),
        ({"orderNumber": "INV-1", "password": "nope"}, "5", "Access denied"),
    ],
)
def test_refund_and_reverse_refusals_change_nothing(
    asgi: tuple[AsgiClient, Ledger], form: dict[str, str], code: str, text: str
) -> None:
    client, ledger = asgi
    _paid(client)
    expected = {"errorCode": code, "errorMessage": text}
    assert client.post(REFUND, data={**AUTH, **form}).json() == expected
    if "amount" not in form:
        assert client.post(REVERSE, data={**AUTH, **form}).json() == expected
    [order] = ledger.orders()
    assert (order.state, order.refunded_amount) == (OrderState.DEPOSITED, 0)


@pytest.mark.parametrize("binding", ["insufficient-1", "pending-1"])
def test_an_order_that_took_no_money_cannot_be_refunded_or_reversed(
    asgi: tuple[AsgiClient, Ledger], binding: str
) -> None:
    client, ledger = asgi
    order_id = _paid(client, binding=binding)
    for url in (REFUND, REVERSE):
        body = client.post(url, data={**AUTH, "orderId": order_id}).json()
        assert body["errorCode"] == "7"
        assert body["errorMessage"].startswith("Payment must be in a correct state")
    assert ledger.deposited_count() == 0


def test_reverse_cancels_a_payment_of_today_once(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, ledger = asgi
    order_id = _paid(client)
    form = {**AUTH, "orderId": order_id}

    assert client.post(REVERSE, json=form).json() == OK
    status = _status(client, order_id)
    assert status["orderStatus"] == 3
    assert status["paymentAmountInfo"]["paymentState"] == "REVERSED"
    assert status["paymentAmountInfo"]["depositedAmount"] == 0
    twice = client.post(REVERSE, json=form).json()
    assert twice == {
        "errorCode": "7",
        "errorMessage": "Payment must be in a correct state (the order is REVERSED)",
    }
    assert client.post(REFUND, json=form).json()["errorCode"] == "7"
    [shown] = client.get("/sandbox/ledger", params={"state": "REVERSED"}).json()["orders"]
    assert (shown["orderStatus"], shown["depositedAmount"], shown["refundedAmount"]) == (3, 0, 0)
    assert ledger.deposited_count() == 1


def test_a_refunded_order_cannot_be_reversed(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, ledger = asgi
    order_id = _paid(client)
    client.post(REFUND, data={**AUTH, "orderId": order_id, "amount": "100"})

    body = client.post(REVERSE, data={**AUTH, "orderId": order_id}).json()
    assert body == {
        "errorCode": "7",
        "errorMessage": "Payment must be in a correct state (the order is REFUNDED)",
    }
    order = ledger.find_by_id(order_id)
    assert order is not None and (order.state, order.refunded_amount) == (OrderState.REFUNDED, 100)


def test_reverse_is_refused_after_the_day_of_the_deposit(asgi: tuple[AsgiClient, Ledger]) -> None:
    client, ledger = asgi
    yesterday = int(time.time() * 1000) - 86_400_000
    ledger.add(
        Order(
            "old-1", "OLD-1", "approve-1", 500, "643", OrderState.DEPOSITED, 0, yesterday
        ).deposited(yesterday)
    )

    body = client.post(REVERSE, data={**AUTH, "orderId": "old-1"}).json()
    assert body["errorCode"] == "7"
    assert body["errorMessage"].startswith("Reversal is possible only on the day of payment")
    assert client.post(REFUND, data={**AUTH, "orderId": "old-1"}).json() == OK


def test_the_gateway_client_and_the_operations_classification_agree_with_the_sandbox(
    gateway: tuple[SandboxServer, httpx.Client],
) -> None:
    server, client = gateway
    order_id = client.post(f"{server.url}/recurrentPayment.do", json=charge()).json()["data"][
        "orderId"
    ]
    config = GatewayConfig(base_url=server.url, username="sandbox", password="sandbox")
    with GatewayClient(config) as rbs:
        outcomes = [
            classify_action(rbs.refund(RefundRequest(order_id, 300, "rf-7"))),
            classify_action(rbs.refund(RefundRequest(order_id, 300, "rf-7"))),
            classify_action(rbs.refund(RefundRequest(order_id, 99999, "rf-8"))),
            classify_action(rbs.reverse(ReverseRequest(order_id))),
            classify_action(rbs.refund(RefundRequest(order_id, 0, "rf-9"))),
        ]
    assert [o.state for o in outcomes] == [
        RefundState.SUCCEEDED,
        RefundState.SUCCEEDED,
        RefundState.FAILED,
        RefundState.FAILED,
        RefundState.SUCCEEDED,
    ]
    assert (outcomes[2].error_code, outcomes[3].error_code) == ("7", "7")
    assert "99999" in outcomes[2].message
    [order] = client.get(f"{server.root_url}/sandbox/ledger").json()["orders"]
    assert (order["state"], order["refundedAmount"]) == ("REFUNDED", 12300)
    assert [r["amount"] for r in order["refunds"]] == [300, 12000]
