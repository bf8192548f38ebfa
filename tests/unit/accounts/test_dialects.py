"""The dialect table and what the client sends by it: path and body encoding per method."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from billing.domain.dialects import METHODS, ROUTES, Dialect, Encoding, parse_dialect, route
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest, RefundRequest, ReverseRequest

PASSWORD = "dialect-S3CRET"


@pytest.mark.parametrize(
    ("dialect", "method", "path", "encoding"),
    [
        # The classic RBS REST API: form bodies, but JSON for recurrentPayment.do.
        (Dialect.RBS, "recurrentPayment.do", "/payment/rest/recurrentPayment.do", Encoding.JSON),
        (
            Dialect.RBS,
            "getOrderStatusExtended.do",
            "/payment/rest/getOrderStatusExtended.do",
            Encoding.FORM,
        ),
        (Dialect.RBS, "refund.do", "/payment/rest/refund.do", Encoding.FORM),
        (Dialect.RBS, "reverse.do", "/payment/rest/reverse.do", Encoding.FORM),
        (Dialect.RBS, "deposit.do", "/payment/rest/deposit.do", Encoding.FORM),
        (Dialect.RBS, "decline.do", "/payment/rest/decline.do", Encoding.FORM),
        # all2pay's router (the seed docs): JSON to /v1 for every method.
        (Dialect.ALL2PAY, "recurrentPayment.do", "/v1/recurrentPayment.do", Encoding.JSON),
        (
            Dialect.ALL2PAY,
            "getOrderStatusExtended.do",
            "/v1/getOrderStatusExtended.do",
            Encoding.JSON,
        ),
        (Dialect.ALL2PAY, "refund.do", "/v1/refund.do", Encoding.JSON),
        (Dialect.ALL2PAY, "reverse.do", "/v1/reverse.do", Encoding.JSON),
        (Dialect.ALL2PAY, "deposit.do", "/v1/deposit.do", Encoding.JSON),
        (Dialect.ALL2PAY, "decline.do", "/v1/decline.do", Encoding.JSON),
    ],
)
def test_each_method_has_its_path_and_encoding(
    dialect: Dialect, method: str, path: str, encoding: Encoding
) -> None:
    assert route(dialect, method).path(method) == path
    assert route(dialect, method).encoding is encoding


def test_both_dialects_cover_the_same_methods() -> None:
    assert set(ROUTES[Dialect.RBS]) == set(ROUTES[Dialect.ALL2PAY]) == set(METHODS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("rbs", Dialect.RBS), (" ALL2PAY ", Dialect.ALL2PAY), ("All2Pay", Dialect.ALL2PAY)],
)
def test_dialect_names_are_read_in_any_case(text: str, expected: Dialect) -> None:
    assert parse_dialect(text) is expected


@pytest.mark.parametrize("text", ["", "sber", "json", "rbs2"])
def test_an_unknown_dialect_is_refused_naming_the_choices(text: str) -> None:
    with pytest.raises(ValueError, match="use one of rbs, all2pay"):
        parse_dialect(text)


def _client(base_url: str, dialect: str, seen: list[httpx.Request]) -> GatewayClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"errorCode": "0", "errorMessage": "Success"})

    config = GatewayConfig(
        base_url=base_url, username="merchant", password=PASSWORD, dialect=dialect
    )
    return GatewayClient(config, transport=httpx.MockTransport(handler))


def _body(request: httpx.Request) -> tuple[str, dict[str, Any]]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return "json", json.loads(request.content)
    assert content_type.startswith("application/x-www-form-urlencoded"), content_type
    return "form", {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


CALLS = [
    ("recurrentPayment.do", lambda c: c.charge(ChargeRequest("ord-1", "bind-1", 100, "643"))),
    ("getOrderStatusExtended.do", lambda c: c.order_status(order_number="ord-1")),
    ("refund.do", lambda c: c.refund(RefundRequest("order-id-1", 50, "rf-1"))),
    ("reverse.do", lambda c: c.reverse(ReverseRequest("order-id-1"))),
]


@pytest.mark.parametrize("dialect", ["rbs", "all2pay"])
@pytest.mark.parametrize(("method", "call"), CALLS)
def test_the_client_sends_each_method_the_way_its_dialect_says(
    dialect: str, method: str, call: Any
) -> None:
    seen: list[httpx.Request] = []
    with _client("https://gw.example.test", dialect, seen) as client:
        call(client)
    (request,) = seen
    expected = route(Dialect(dialect), method)
    assert request.url.path == expected.path(method)
    encoding, body = _body(request)
    assert encoding == expected.encoding.value
    assert body["userName"] == "merchant"
    if method == "refund.do":
        # JSON keeps the amount a number; a form carries text.
        assert body["amount"] == (50 if encoding == "json" else "50")


def test_a_base_url_with_a_path_is_used_as_is_for_every_method() -> None:
    seen: list[httpx.Request] = []
    with _client("https://gw.example.test/payment", "rbs", seen) as client:
        client.order_status(order_number="ord-1")
        client.charge(ChargeRequest("ord-2", "bind-1", 100, "643"))
    assert [r.url.path for r in seen] == [
        "/payment/getOrderStatusExtended.do",
        "/payment/recurrentPayment.do",
    ]


def test_the_default_dialect_keeps_todays_requests() -> None:
    config = GatewayConfig(
        base_url="https://gw.example.test/payment/rest", username="u", password="p"
    )
    assert config.dialect is Dialect.RBS
    assert config.method_url("refund.do") == "https://gw.example.test/payment/rest/refund.do"


def test_fiscal_contacts_go_in_additional_parameters_and_never_into_a_kept_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        echo = json.loads(request.content)["additionalParameters"]
        return httpx.Response(
            200,
            json={"success": False, "error": {"code": "7", "message": f"System error {echo}"}},
        )

    config = GatewayConfig(base_url="https://gw.example.test", username="u", password=PASSWORD)
    request = ChargeRequest(
        "ord-9",
        "bind-1",
        100,
        "643",
        client_id="cust-1",
        customer_email="anna@example.com",
        customer_phone="+79001234567",
    )
    with GatewayClient(config, transport=httpx.MockTransport(handler)) as client:
        result = client.charge(request)
    body = json.loads(seen[0].content)
    assert body["additionalParameters"] == {
        "clientId": "cust-1",
        "email": "anna@example.com",
        "phone": "+79001234567",
    }
    kept = json.dumps(result.body)  # type: ignore[union-attr]
    assert "anna@example.com" not in kept and "+79001234567" not in kept
    assert "anna@example.com" not in repr(request) and "+79001234567" not in repr(request)
