"""Secrets echoed by the gateway never reach what is stored, shown or logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from urllib.parse import quote_plus

import httpx
import pytest

from billing.bootstrap import configure_logging
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest, RefundRequest
from billing.gateway.redact import RedactingFilter, Secrets, redact_json, redact_text
from billing.settings import Settings

# Characters that JSON and URL encoding change, so a plain search-and-replace misses them.
PASSWORD = 'p@ss"w/ord&=S3CRET ü'
TOKEN = "t0ken/S3CRET+value"
BINDING = "fd3afc57-c6d0-4e3d-bd3e-BINDINGSECRET"
BASE = "https://gw.example.test/payment/rest"


def _client(
    handler: Callable[[httpx.Request], httpx.Response], *, token: str | None = None
) -> GatewayClient:
    config = GatewayConfig(
        base_url=BASE,
        username="merchant",
        password=PASSWORD,  # type: ignore[arg-type]
        token=token,  # type: ignore[arg-type]
    )
    return GatewayClient(config, transport=httpx.MockTransport(handler))


def _kept(result: object) -> str:
    """Everything a result carries (what charging and refunds store and show)."""
    return json.dumps(asdict(result), ensure_ascii=False)  # type: ignore[call-overload]


def _assert_clean(text: str) -> None:
    for secret in (PASSWORD, TOKEN, BINDING):
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text
        assert quote_plus(secret) not in text
    assert "S3CRET" not in text and "BINDINGSECRET" not in text


def test_a_5xx_page_echoing_the_url_encoded_form_keeps_no_password() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=f"<pre>bad request: {request.content.decode()}</pre>")

    with _client(echo) as client:
        result = client.order_status(order_number="ord-1")
    _assert_clean(_kept(result))
    assert "ord-1" in _kept(result)  # what is not secret stays readable


def test_a_non_json_answer_echoing_the_json_escaped_request_keeps_no_secret() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f"unexpected: {request.content.decode()}")

    with _client(echo) as client:
        result = client.charge(
            ChargeRequest(order_number="ord-2", binding_id=BINDING, amount=100, currency="643")
        )
    _assert_clean(_kept(result))


def test_the_request_id_header_never_carries_a_secret() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        body = {"errorCode": "0", "orderStatus": 2, "orderNumber": "ord-3"}
        return httpx.Response(200, json=body, headers={"X-Request-Id": f"req-1;token={TOKEN}"})

    with _client(echo, token=TOKEN) as client:
        result = client.order_status(order_number="ord-3")
    assert result.request_id is not None and result.request_id.startswith("req-1")
    _assert_clean(_kept(result))


def test_a_binding_the_call_did_not_send_is_masked_when_named() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"refund refused for bindingId={BINDING}")

    with _client(echo) as client:
        result = client.refund(RefundRequest("order-1", 100, "refund-1"))
    kept = _kept(result)
    _assert_clean(kept)
    assert "…CRET" in kept  # the last four characters, like everywhere else


def test_redact_json_masks_named_keys_and_secrets_inside_strings() -> None:
    body = {
        "errorMessage": f"wrong password {PASSWORD}",
        "bindingInfo": {"bindingId": BINDING},
        "merchant": {"Token": "anything", "items": [{"note": f"token: {TOKEN}"}]},
    }
    redact_json(body, Secrets.of(secrets=[PASSWORD, TOKEN]))
    _assert_clean(json.dumps(body, ensure_ascii=False))
    assert body["bindingInfo"] == {"bindingId": "…CRET"}


@pytest.mark.parametrize(
    "text",
    [
        f"userName=m&password={quote_plus(PASSWORD)}",
        json.dumps({"password": PASSWORD}),
        f"token={TOKEN}&orderNumber=1",
        f"'bindingId': '{BINDING}'",
    ],
)
def test_redact_text_covers_every_echoed_form(text: str) -> None:
    _assert_clean(redact_text(text, Secrets.of(secrets=[PASSWORD, TOKEN], bindings=[BINDING])))


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    """A root handler like the service's own, removed afterwards with our filter."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    for other in root.handlers:
        for f in list(other.filters):
            if isinstance(f, RedactingFilter):
                other.removeFilter(f)


def test_configure_logging_redacts_httpcore_debug_output_and_every_logger(
    root_stream: io.StringIO,
) -> None:
    settings = Settings(gateway_password=PASSWORD, gateway_token=TOKEN)  # type: ignore[arg-type]
    configure_logging("DEBUG", settings=settings)
    logging.getLogger("httpcore.http11").debug(
        "send_request_body.started request=%r", f"password={quote_plus(PASSWORD)}"
    )
    logging.getLogger("billing.charging").warning("charge of bindingId=%s failed", BINDING)
    try:
        raise RuntimeError(f"the gateway said {TOKEN}")
    except RuntimeError:
        logging.getLogger("billing.gateway").exception("boom request_id=%s", TOKEN)
    output = root_stream.getvalue()
    assert "httpcore.http11" in output and "RuntimeError" in output
    _assert_clean(output)
