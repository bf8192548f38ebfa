"""GatewayClient against httpx.MockTransport: request shapes, result mapping, no secrets."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.bootstrap import gateway_config
from billing.domain.model import mask_binding
from billing.errors import GatewayError
from billing.gateway import client as client_module
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest, RefundRequest, ReverseRequest
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)

PASSWORD = "pa55-w0rd-S3CRET"
TOKEN = "t0ken-S3CRET-value"
BINDING = "fd3afc57-c6d0-4e3d-bd3e-BINDINGSECRET"
BASE = "https://gw.example.test/payment/rest"

SUCCESS_BODY: dict[str, Any] = {
    "success": True,
    "data": {"orderId": "f7beebe4-7c9a-43cf-8e26-67ab741f9b9e"},
    "orderStatus": {
        "errorCode": "0",
        "orderNumber": "UAF-203974-DE-12",
        "orderStatus": 2,
        "actionCode": 0,
        "actionCodeDescription": "",
        "amount": 12300,
        "currency": "810",
        "date": 1491333938243,
        "orderDescription": "Test description",
        "paymentAmountInfo": {
            "paymentState": "DEPOSITED",
            "approvedAmount": 12300,
            "depositedAmount": 12300,
            "refundedAmount": 0,
        },
    },
}
FAILURE_BODY: dict[str, Any] = {
    "error": {
        "code": "10",
        "description": "An order with this number has already been registered",
        "message": "An order with this number has already been registered.",
    },
    "success": False,
}

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, **overrides: Any) -> GatewayClient:
    values: dict[str, Any] = {"base_url": BASE, "username": "merchant-api", "password": PASSWORD}
    values.update(overrides)
    return GatewayClient(GatewayConfig(**values), transport=httpx.MockTransport(handler))


def pay(client: GatewayClient, **overrides: Any) -> GatewayResult:
    values: dict[str, Any] = {
        "order_number": "UAF-203974-DE-12",
        "binding_id": BINDING,
        "amount": 12300,
        "currency": "810",
        "description": "Test description",
    }
    values.update(overrides)
    return client.charge(ChargeRequest(**values))


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.fixture
def captured() -> Iterator[list[httpx.Request]]:
    yield []


# -- request shape ------------------------------------------------------------------------------


def test_recurrent_payment_posts_json_like_the_doc_example(captured: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json=SUCCESS_BODY)

    with make_client(handler) as client:
        result = pay(client, client_id="cust-42", language="RU")

    (request,) = captured
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/recurrentPayment.do"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body == {
        "userName": "merchant-api",
        "password": PASSWORD,
        "orderNumber": "UAF-203974-DE-12",
        "bindingId": BINDING,
        "amount": 12300,
        "currency": "810",
        "description": "Test description",
        "language": "RU",
        "additionalParameters": {"clientId": "cust-42"},
    }
    assert isinstance(body["amount"], int)
    assert isinstance(body["currency"], str)
    assert isinstance(result, JsonReply)
    assert result.http_status == 200
    assert result.body == SUCCESS_BODY


def test_optional_fields_are_left_out(captured: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json=SUCCESS_BODY)

    with make_client(handler) as client:
        pay(client, description=None)
    body = json.loads(captured[0].content)
    assert set(body) == {"userName", "password", "orderNumber", "bindingId", "amount", "currency"}


def test_token_replaces_username_and_password(captured: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"errorCode": "6", "errorMessage": "Unregistered"})

    with make_client(handler, token=TOKEN) as client:
        pay(client)
        client.order_status(order_number="n-1")
    assert json.loads(captured[0].content)["token"] == TOKEN
    assert "password" not in json.loads(captured[0].content)
    assert parse_qs(captured[1].content.decode())["token"] == [TOKEN]


def test_order_status_posts_a_form(captured: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"errorCode": "0", "orderStatus": 2})

    with make_client(handler) as client:
        by_number = client.order_status(order_number="UAF-1")
        by_id = client.order_status(order_number="UAF-1", order_id="b9054496-c65a")

    first, second = captured
    assert str(first.url) == f"{BASE}/getOrderStatusExtended.do"
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(first.content.decode()) == {
        "userName": ["merchant-api"],
        "password": [PASSWORD],
        "orderNumber": ["UAF-1"],
    }
    form = parse_qs(second.content.decode())
    assert form["orderId"] == ["b9054496-c65a"]
    assert "orderNumber" not in form  # orderId has priority
    assert isinstance(by_number, JsonReply)
    assert isinstance(by_id, JsonReply)


def test_refund_and_reverse_post_forms(captured: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"errorCode": 0, "errorMessage": "Successful"})

    with make_client(handler) as client:
        refunded = client.refund(RefundRequest("order-1", 500, "refund-7"))
        reversed_ = client.reverse(ReverseRequest("order-1"))

    refund_request, reverse_request = captured
    assert refund_request.url.path.endswith("/refund.do")
    assert parse_qs(refund_request.content.decode()) == {
        "userName": ["merchant-api"],
        "password": [PASSWORD],
        "orderId": ["order-1"],
        "amount": ["500"],
        "externalRefundId": ["refund-7"],
    }
    assert reverse_request.url.path.endswith("/reverse.do")
    assert parse_qs(reverse_request.content.decode())["orderId"] == ["order-1"]
    assert isinstance(refunded, JsonReply)
    assert isinstance(reversed_, JsonReply)


def test_timeouts_and_pool_are_configured() -> None:
    config = GatewayConfig(
        base_url=BASE + "/",
        username="u",
        password=PASSWORD,
        connect_timeout=1.5,
        read_timeout=20,
        write_timeout=3,
        pool_timeout=4,
        max_connections=7,
    )
    assert config.base_url == BASE
    with GatewayClient(config) as client:
        timeout = client._http.timeout
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (1.5, 20, 3, 4)


def test_config_defaults() -> None:
    config = GatewayConfig(base_url=BASE, username="u", password=PASSWORD)
    assert config.connect_timeout == 5
    assert config.read_timeout == 30
    assert config.max_connections == 50
    assert config.token is None


def test_config_from_settings() -> None:
    from billing.settings import Settings

    settings_ = Settings(gateway_url=BASE, gateway_password=PASSWORD, gateway_read_timeout=12)
    config = gateway_config(settings_)
    assert config.read_timeout == 12
    assert config.password.get_secret_value() == PASSWORD


@pytest.mark.parametrize(
    "base_url",
    ["ftp://gw.example.test", "not a url", "https://user:pw@gw.example.test", "https://x/?a=1"],
    ids=["scheme", "garbage", "credentials", "query"],
)
def test_config_rejects_bad_base_urls(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        GatewayConfig(base_url=base_url, username="u", password=PASSWORD)
    assert "pw@" not in str(info.value)


# -- local validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"order_number": ""},
        {"order_number": "x" * 33},
        {"order_number": " padded "},
        {"amount": 0},
        {"amount": -5},
        {"amount": 10**12},
        {"amount": 12.5},
        {"amount": True},
        {"amount": "12300"},
        {"currency": "RUB"},
        {"currency": "81"},
        {"currency": 810},
        {"currency": "\uff18\uff11\uff10"},  # full-width digits
        {"binding_id": ""},
        {"description": "d" * 513},
        {"language": "rus"},
        {"client_id": ""},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}"[:20] for k, v in o.items()),
)
def test_invalid_requests_raise_before_sending(overrides: dict[str, Any]) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=SUCCESS_BODY)

    with make_client(handler) as client, pytest.raises(GatewayError) as info:
        pay(client, **overrides)
    assert sent == []
    assert BINDING not in str(info.value)


def test_order_status_needs_a_key() -> None:
    with make_client(lambda r: httpx.Response(200, json={})) as client:
        with pytest.raises(GatewayError):
            client.order_status()
        with pytest.raises(GatewayError):
            client.order_status(order_number="y" * 40)


def test_refund_validation() -> None:
    with make_client(lambda r: httpx.Response(200, json={})) as client:
        with pytest.raises(GatewayError):
            client.refund(RefundRequest("order-1", -1, "r-1"))
        with pytest.raises(GatewayError):
            client.refund(RefundRequest("", 1, "r-1"))
        with pytest.raises(GatewayError):
            client.reverse(ReverseRequest(""))


# -- result mapping -----------------------------------------------------------------------------


def test_json_success_example() -> None:
    with make_client(
        lambda r: httpx.Response(200, json=SUCCESS_BODY, headers={"X-Request-Id": "req-123"})
    ) as client:
        result = pay(client)
    assert result == JsonReply(200, SUCCESS_BODY, "req-123")


def test_json_failure_example() -> None:
    with make_client(lambda r: httpx.Response(200, json=FAILURE_BODY)) as client:
        result = pay(client)
    assert result == JsonReply(200, FAILURE_BODY, None)


def test_json_object_with_4xx_is_a_json_reply() -> None:
    body = {"errorCode": "5", "errorMessage": "Access denied"}
    with make_client(lambda r: httpx.Response(403, json=body)) as client:
        result = client.order_status(order_number="n")
    assert result == JsonReply(403, body, None)


def test_500_html_is_an_http_error() -> None:
    html = "<html><body><h1>500 Internal Server Error</h1></body></html>"
    with make_client(
        lambda r: httpx.Response(500, text=html, headers={"content-type": "text/html"})
    ) as client:
        result = pay(client)
    assert isinstance(result, HttpErrorReply)
    assert result.http_status == 500
    assert "Internal Server Error" in result.snippet


def test_5xx_with_json_object_is_still_an_http_error() -> None:
    with make_client(lambda r: httpx.Response(503, json={"errorCode": "7"})) as client:
        result = pay(client)
    assert isinstance(result, HttpErrorReply)
    assert result.http_status == 503


def test_4xx_html_is_an_http_error() -> None:
    with make_client(lambda r: httpx.Response(404, text="<h1>Not Found</h1>")) as client:
        result = pay(client)
    assert isinstance(result, HttpErrorReply)
    assert result.http_status == 404


def test_302_is_an_http_error() -> None:
    with make_client(
        lambda r: httpx.Response(302, headers={"location": "https://elsewhere.test/"})
    ) as client:
        result = pay(client)
    assert isinstance(result, HttpErrorReply)
    assert result.http_status == 302


def test_200_html_is_not_json() -> None:
    html = "<!DOCTYPE html><html><body>Checking your browser…</body></html>"
    with make_client(
        lambda r: httpx.Response(
            200, text=html, headers={"content-type": "text/html; charset=utf-8"}
        )
    ) as client:
        result = pay(client)
    assert isinstance(result, NotJsonReply)
    assert result.http_status == 200
    assert result.content_type.startswith("text/html")
    assert "Checking your browser" in result.snippet


@pytest.mark.parametrize(
    "content",
    [b"[1, 2, 3]", b'"ok"', b"null", b"42", b'{"success": tru', b"", b"\xff\xfe\x00{", b"[" * 5000],
    ids=["array", "string", "null", "number", "truncated", "empty", "bad-utf8", "deep-nesting"],
)
def test_200_without_a_json_object_is_not_json(content: bytes) -> None:
    with make_client(
        lambda r: httpx.Response(200, content=content, headers={"content-type": "application/json"})
    ) as client:
        result = pay(client)
    assert isinstance(result, NotJsonReply)
    assert len(result.snippet) <= client_module.SNIPPET_LIMIT


def test_4xx_json_array_is_an_http_error() -> None:
    with make_client(lambda r: httpx.Response(400, json=["bad"])) as client:
        result = pay(client)
    assert isinstance(result, HttpErrorReply)


def test_unreadable_json_object_is_handled_like_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from billing.gateway.models import RecurrentPaymentResponse

    def refuse(value: object) -> object:
        raise ValidationError.from_exception_data("RecurrentPaymentResponse", [])

    monkeypatch.setattr(RecurrentPaymentResponse, "model_validate", refuse)
    with make_client(lambda r: httpx.Response(200, json={"success": True})) as client:
        result = pay(client)
    assert isinstance(result, NotJsonReply)
    assert "success" in result.snippet


def test_json_with_a_charset_and_bom_is_read() -> None:
    content = b"\xef\xbb\xbf" + json.dumps(FAILURE_BODY).encode()
    with make_client(
        lambda r: httpx.Response(
            200, content=content, headers={"content-type": "text/plain; charset=utf-8"}
        )
    ) as client:
        result = pay(client)
    assert result == JsonReply(200, FAILURE_BODY, None)


@pytest.mark.parametrize(
    ("exc", "kind", "sent"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), ConnectionFailed, False),
        (httpx.ConnectError("[Errno -2] Name or service not known"), ConnectionFailed, False),
        (httpx.ConnectTimeout("timed out"), ConnectionFailed, False),
        (httpx.PoolTimeout("no connection available"), ConnectionFailed, False),
        (httpx.UnsupportedProtocol("bad scheme"), ConnectionFailed, False),
        (httpx.ReadTimeout("timed out"), ReadTimedOut, True),
        (httpx.WriteTimeout("timed out"), ConnectionLost, True),
        (httpx.RemoteProtocolError("Server disconnected"), ConnectionLost, True),
        (httpx.LocalProtocolError("illegal header"), ConnectionLost, True),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), ConnectionLost, True),
        (httpx.WriteError("[Errno 32] Broken pipe"), ConnectionLost, True),
        (httpx.CloseError("close failed"), ConnectionLost, True),
        (httpx.ProxyError("proxy said no"), ConnectionLost, True),
        (httpx.DecodingError("bad gzip"), ConnectionLost, True),
        (httpx.TransportError("something else"), ConnectionLost, True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_transport_errors_become_results(exc: Exception, kind: type, sent: bool) -> None:
    with make_client(raising(exc)) as client:
        payment = pay(client)
        status = client.order_status(order_number="n-1")
    for result in (payment, status):
        assert isinstance(result, kind)
        assert isinstance(result, ConnectionFailed | ReadTimedOut | ConnectionLost)
        assert result.request_sent is sent
        assert type(exc).__name__ in result.detail


def test_real_connection_refused_is_connection_failed() -> None:
    with socket.socket() as probe:  # a port nobody listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GatewayConfig(
        base_url=f"http://127.0.0.1:{port}", username="u", password=PASSWORD, connect_timeout=2
    )
    with GatewayClient(config) as client:
        result = pay(client)
    assert isinstance(result, ConnectionFailed)
    assert result.request_sent is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.integers(min_value=100, max_value=599),
    content=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=8), inner, max_size=3)
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_any_answer_maps_to_a_result(status: int, content: bytes) -> None:
    with make_client(lambda r: httpx.Response(status, content=content)) as client:
        result = pay(client)
    if 200 <= status <= 299:
        assert isinstance(result, JsonReply | NotJsonReply)
    elif status >= 500:
        assert isinstance(result, HttpErrorReply)
    elif 400 <= status <= 499:
        assert isinstance(result, JsonReply | HttpErrorReply)
    else:
        assert isinstance(result, HttpErrorReply)


# -- secrets ------------------------------------------------------------------------------------


def _echo(request: httpx.Request) -> str:
    """What a careless gateway page might show: everything we sent it."""
    return f"<html><pre>{request.content.decode()}</pre></html>"


def _raising_with_echo(kind: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise kind(f"failed while sending {request.content.decode()}")

    return handler


_ANSWERS: dict[str, Handler] = {
    "success": lambda r: httpx.Response(200, json=SUCCESS_BODY),
    "failure": lambda r: httpx.Response(200, json=FAILURE_BODY),
    "json-echoing-secrets": lambda r: httpx.Response(
        200,
        json={
            "errorCode": "0",
            "orderStatus": 2,
            "bindingInfo": {"bindingId": BINDING, "clientId": "c"},
            "echo": [{"password": PASSWORD, "token": TOKEN, "request": r.content.decode()}],
        },
    ),
    "500-echo": lambda r: httpx.Response(500, text=_echo(r)),
    "200-html-echo": lambda r: httpx.Response(200, text=_echo(r)),
    "404-echo": lambda r: httpx.Response(404, text=_echo(r)),
    "long-page-echo": lambda r: httpx.Response(
        502, text="x" * (client_module.SNIPPET_LIMIT - 10) + _echo(r)
    ),
    "connect-error": _raising_with_echo(httpx.ConnectError),
    "read-timeout": _raising_with_echo(httpx.ReadTimeout),
    "protocol-error": _raising_with_echo(httpx.RemoteProtocolError),
    "write-timeout": _raising_with_echo(httpx.WriteTimeout),
}


@pytest.mark.parametrize("handler", list(_ANSWERS.values()), ids=list(_ANSWERS))
def test_secrets_never_in_logs_reprs_or_results(
    handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = GatewayConfig(base_url=BASE, username="merchant-api", password=PASSWORD, token=TOKEN)
    client = GatewayClient(config, transport=httpx.MockTransport(handler))
    with client:
        results = [
            pay(client),
            client.order_status(order_number="UAF-203974-DE-12"),
            client.refund(RefundRequest("order-1", 100, "refund-1")),
            client.reverse(ReverseRequest("order-1")),
        ]
    texts = [caplog.text, repr(config), str(config), repr(client)]
    texts += [repr(result) for result in results]
    for record in caplog.records:
        texts.append(repr(record.__dict__))
    for text in texts:
        assert PASSWORD not in text
        assert TOKEN not in text
        assert BINDING not in text
    assert "UAF-203974-DE-12" in caplog.text
    assert mask_binding(BINDING) in caplog.text  # the masked binding is what we log


def test_validation_error_reprs_hide_the_binding(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with make_client(lambda r: httpx.Response(200, json={})) as client:
        for overrides in ({"amount": 0}, {"currency": "x"}, {"order_number": ""}):
            with pytest.raises(GatewayError) as info:
                pay(client, **overrides)
            assert BINDING not in repr(info.value)
            assert PASSWORD not in repr(info.value)
    assert PASSWORD not in caplog.text


def test_config_validation_error_hides_the_password() -> None:
    with pytest.raises(ValueError) as info:
        GatewayConfig(base_url=BASE, username="u", password=PASSWORD, read_timeout=-1)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)


def test_logs_carry_method_order_status_and_timing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="billing.gateway")
    with make_client(lambda r: httpx.Response(200, json=SUCCESS_BODY)) as client:
        pay(client)
    (record,) = [r for r in caplog.records if r.name == "billing.gateway"]
    message = record.getMessage()
    assert "recurrentPayment.do" in message
    assert "orderNumber=UAF-203974-DE-12" in message
    assert "JsonReply" in message
    assert "http_status=200" in message
    assert "elapsed_ms=" in message
    assert record.__dict__["gateway_result"] == "JsonReply"
