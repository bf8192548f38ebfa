"""Bad input to the admin API on real PostgreSQL never gives a 500: NUL bytes in any text
field (PostgreSQL refuses them), ids and offsets beyond 64 bits, amounts longer than the
gateway's 12 digits, non-ASCII digits in currencies — each is a 422 naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth_tokens import TokenConfig
from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.entrypoints.http.admin.app import create_admin_app
from billing.settings import Settings
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BIG = 2**64
GOOD = {
    "customer_id": "cust-1",
    "binding_id": "approve-1",
    "amount": 49900,
    "schedule": "0 3 1 * *",
    "reason": "signup",
}


@pytest.fixture
def asgi(pg_url: str) -> Iterator[FastAPI]:
    app: App = build_app(
        Settings(database_url=pg_url),
        gateway=FakeGateway(),
        clock=ManualClock(),
        policy=DEFAULT_POLICY,
        dispatcher=RecordingDispatcher(),
    )
    yield create_admin_app(app, TokenConfig.parse(f"ops:operator:{TOKEN}"))
    app.close()


def _call(asgi: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            headers = AUTH | kwargs.pop("headers", {})
            return await client.request(method, path, headers=headers, **kwargs)

    return asyncio.run(go())


def _created(asgi: FastAPI) -> int:
    response = _call(asgi, "POST", "/api/subscriptions", json=GOOD)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("customer_id", GOOD | {"customer_id": "cust\x00-1"}),
        ("binding_id", GOOD | {"binding_id": "approve\x00"}),
        ("description", GOOD | {"description": "gold\x00plan"}),
        ("reason", GOOD | {"reason": "sign\x00up"}),
        ("schedule", GOOD | {"schedule": "0 3 1 * *\x00"}),
        ("timezone", GOOD | {"timezone": "Europe/Moscow\x00"}),
        ("amount", GOOD | {"amount": 10**12}),
        ("currency", GOOD | {"currency": "٦٤٣"}),
        ("currency", GOOD | {"currency": "\x00643"}),
    ],
)
def test_bad_create_is_a_422_naming_the_field(asgi: FastAPI, field: str, body: Any) -> None:
    response = _call(asgi, "POST", "/api/subscriptions", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert response.json()["message"].startswith(field)
    assert _call(asgi, "GET", "/api/subscriptions").json() == []


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("description", {"description": "a\x00b", "reason": "r"}),
        ("currency", {"currency": "٨٤٠", "reason": "r"}),
        ("currency", {"currency": "8\x0040", "reason": "r"}),
        ("schedule", {"schedule": "0 3 1 * *\x00", "reason": "r"}),
        ("reason", {"amount": 100, "reason": "r\x00"}),
    ],
)
def test_bad_update_is_a_422_and_changes_nothing(asgi: FastAPI, field: str, body: Any) -> None:
    sub_id = _created(asgi)
    response = _call(asgi, "PATCH", f"/api/subscriptions/{sub_id}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(field)
    shown = _call(asgi, "GET", f"/api/subscriptions/{sub_id}").json()
    assert (shown["amount"], shown["currency"], shown["description"]) == (49900, "643", None)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"/api/subscriptions/{BIG}", "subscription_id"),
        ("GET", f"/api/invoices/{BIG}", "invoice_id"),
        ("GET", f"/api/subscriptions?offset={BIG}", "offset"),
        ("GET", f"/api/invoices?offset={BIG}", "offset"),
        ("GET", f"/api/invoices?subscription_id={BIG}", "subscription_id"),
        ("GET", f"/api/audit?before_id={BIG}", "before_id"),
        ("GET", f"/api/audit?subscription_id={BIG}", "subscription_id"),
        ("GET", "/api/subscriptions?customer_id=a%00b", "customer_id"),
        ("GET", "/api/subscriptions?status=a%00b", "status"),
        ("GET", "/api/invoices?failure=a%00b", "failure"),
        ("GET", "/api/subscriptions?failure=a%00b", "failure"),
    ],
)
def test_ids_beyond_64_bits_and_nul_in_queries_are_422(
    asgi: FastAPI, method: str, path: str, field: str
) -> None:
    response = _call(asgi, method, path)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(field)


def test_post_to_an_id_beyond_64_bits_is_422(asgi: FastAPI) -> None:
    for path in (
        f"/api/subscriptions/{BIG}/pause",
        f"/api/subscriptions/{BIG}/retry",
        f"/api/invoices/{BIG}/void",
        f"/api/attempts/{BIG}/reverse",
    ):
        response = _call(asgi, "POST", path, json={"reason": "r"})
        assert response.status_code == 422, (path, response.text)


def test_a_refund_key_too_long_is_422(asgi: FastAPI) -> None:
    response = _call(
        asgi,
        "POST",
        f"/api/attempts/{BIG}/refund",
        json={"reason": "r"},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 422, response.text


def test_nul_in_a_bulk_retry_or_refund_reason_is_422(asgi: FastAPI) -> None:
    bulk = _call(
        asgi, "POST", "/api/retries/bulk", json={"failure": "transient", "reason": "x\x00"}
    )
    assert bulk.status_code == 422, bulk.text
    assert bulk.json()["message"].startswith("reason")
