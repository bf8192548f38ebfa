"""deposit.do and decline.do: what the client sends, and what an answer means."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from billing.errors import GatewayError
from billing.gateway.classify_orders import OrderCall, classify_order_call
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import DeclineRequest, DepositRequest
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)


def _client(seen: list[httpx.Request], body: object) -> GatewayClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    config = GatewayConfig(
        base_url="https://gw.example/payment/rest", username="merchant", password=SecretStr("pw")
    )
    return GatewayClient(config, transport=httpx.MockTransport(handler))


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_deposit_posts_the_order_id_and_amount_as_a_form() -> None:
    seen: list[httpx.Request] = []
    with _client(seen, {"errorCode": "0"}) as client:
        result = client.deposit(DepositRequest("o-1"))
    assert isinstance(result, JsonReply)
    [request] = seen
    assert request.url.path == "/payment/rest/deposit.do"
    assert _form(request) == {
        "userName": "merchant",
        "password": "pw",
        "orderId": "o-1",
        "amount": "0",
    }


def test_decline_posts_the_order_id_first_else_the_order_number() -> None:
    seen: list[httpx.Request] = []
    with _client(seen, {"errorCode": "0"}) as client:
        client.decline(DeclineRequest(order_id="o-1", order_number="7-1-abc"))
        client.decline(DeclineRequest(order_number="7-1-abc"))
    assert [r.url.path for r in seen] == ["/payment/rest/decline.do"] * 2
    assert _form(seen[0])["orderId"] == "o-1" and "orderNumber" not in _form(seen[0])
    assert _form(seen[1])["orderNumber"] == "7-1-abc"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.deposit(DepositRequest("")),
        lambda c: c.deposit(DepositRequest("o-1", amount=-5)),
        lambda c: c.decline(DeclineRequest()),
        lambda c: c.decline(DeclineRequest(order_number="x" * 33)),
    ],
)
def test_a_malformed_request_is_refused_before_anything_is_sent(call: object) -> None:
    seen: list[httpx.Request] = []
    with _client(seen, {"errorCode": "0"}) as client, pytest.raises(GatewayError):
        call(client)  # type: ignore[operator]
    assert seen == []


@pytest.mark.parametrize(
    ("result", "kind", "moved_on"),
    [
        (JsonReply(200, {"errorCode": "0", "errorMessage": "Success"}), OrderCall.ACCEPTED, False),
        (JsonReply(200, {"errorCode": 0}), OrderCall.ACCEPTED, False),
        # the order is no longer in the state the call needs: settle by its status
        (
            JsonReply(
                200, {"errorCode": "7", "errorMessage": "Payment must be in a correct state"}
            ),
            OrderCall.REFUSED,
            True,
        ),
        (
            JsonReply(200, {"errorCode": "5", "errorMessage": "Order already deposited"}),
            OrderCall.REFUSED,
            True,
        ),
        (
            JsonReply(200, {"errorCode": "5", "errorMessage": "Access denied"}),
            OrderCall.REFUSED,
            False,
        ),
        (
            JsonReply(200, {"errorCode": "6", "errorMessage": "Unknown order"}),
            OrderCall.REFUSED,
            False,
        ),
        # may have been done: never read as refused or accepted
        (JsonReply(200, {"foo": "bar"}), OrderCall.UNKNOWN, False),
        (JsonReply(500, {"errorCode": "0"}), OrderCall.UNKNOWN, False),
        (ReadTimedOut("read timeout"), OrderCall.UNKNOWN, False),
        (ConnectionLost("reset"), OrderCall.UNKNOWN, False),
        (HttpErrorReply(502, "<html>"), OrderCall.UNKNOWN, False),
        (NotJsonReply(200, "text/html", "<html>"), OrderCall.UNKNOWN, False),
        # certainly never left
        (ConnectionFailed("refused"), OrderCall.REFUSED, False),
    ],
)
def test_what_a_deposit_or_decline_answer_means(
    result: GatewayResult, kind: OrderCall, moved_on: bool
) -> None:
    outcome = classify_order_call(result)
    assert outcome.result is kind
    assert outcome.moved_on is moved_on
