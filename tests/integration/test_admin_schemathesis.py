"""Schemathesis against the admin API's own OpenAPI document, on real PostgreSQL: whatever
a client sends that the document describes (and, in the negative phase, what it does not),
the answer is never a 5xx. Bounded: a few examples per operation, derandomized."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from billing.auth_tokens import TokenConfig
from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.entrypoints.http.admin.app import create_admin_app
from billing.settings import Settings
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789abcdef"
BACKEND = "backend-token-0123456789abcdef"
TOKENS = f"ops:operator:{TOKEN},crm:backend:{BACKEND}"
EXAMPLES_PER_OPERATION = 25


def _document() -> dict[str, Any]:
    """The OpenAPI document as the app serves it (built without touching a database)."""
    app = build_app(Settings(database_url="sqlite://"), gateway=FakeGateway())
    try:
        return create_admin_app(app, TokenConfig.parse(TOKENS)).openapi()
    finally:
        app.close()


SCHEMA = schemathesis.openapi.from_dict(_document())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations() if result.ok() is not None]


@pytest.fixture(scope="module")
def asgi(pg_template: str) -> Iterator[FastAPI]:
    import uuid

    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL, _url_for

    name = f"billing_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    app: App = build_app(
        Settings(database_url=_url_for(name)),
        gateway=FakeGateway(),
        clock=ManualClock(),
        policy=DEFAULT_POLICY,
        dispatcher=RecordingDispatcher(),
    )
    yield create_admin_app(app, TokenConfig.parse(TOKENS))
    app.close()
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    engine.dispose()


def _send(asgi: FastAPI, kwargs: dict[str, Any]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.request(**kwargs)

    return asyncio.run(go())


def _has_input(operation: Any) -> bool:
    """Negative cases need something to break: a parameter or a body."""
    return bool(operation.definition.raw.get("parameters") or operation.body)


CASES = [
    pytest.param(op, mode, id=f"{mode.value}-{op.method.upper()} {op.path}")
    for op in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _has_input(op)
]


@pytest.mark.parametrize(("operation", "mode"), CASES)
@pytest.mark.parametrize("token", [TOKEN, BACKEND], ids=["operator", "backend"])
def test_no_generated_request_gets_a_5xx(
    asgi: FastAPI, operation: Any, token: str, mode: GenerationMode
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    statuses: set[int] = set()

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, drop_auth=st.booleans())
    def check(case: Any, drop_auth: bool) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://admin")
        kwargs = {
            key: kwargs[key]
            for key in ("method", "url", "headers", "params", "json", "content")
            if key in kwargs
        }
        headers = dict(kwargs.get("headers") or {})
        headers.pop("Authorization", None)
        if not drop_auth:
            headers["Authorization"] = f"Bearer {token}"
        kwargs["headers"] = headers
        try:
            response = _send(asgi, kwargs)
        except httpx.InvalidURL:
            return  # httpx refuses to send it; no server would see it
        statuses.add(response.status_code)
        assert response.status_code < 500, (case.method, case.path, kwargs, response.text)

    check()
    # The token was used: requests got past authentication, so the routes themselves ran.
    assert statuses - {401}, statuses
