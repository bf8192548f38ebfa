"""The one ASGI app ``billing admin serve`` runs: the API, the console and the callbacks
answer from one port, and the callbacks only when a key is configured."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth_tokens import TokenConfig
from billing.bootstrap import build_app
from billing.entrypoints.http.asgi import create_asgi_app
from billing.errors import ConfigurationError
from billing.settings import Settings
from tests.support.fakes import FakeGateway, ManualClock

TOKEN = "operator-token-0123456789abcdef"


def _get(asgi: FastAPI, path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    apps = []

    def make(**settings: Any) -> FastAPI:
        app = build_app(
            Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}", **settings),
            gateway=FakeGateway(),
            clock=ManualClock(),
        )
        app.db.upgrade()
        apps.append(app)
        return create_asgi_app(app, TokenConfig.parse(f"anna:operator:{TOKEN}"))

    yield make
    for app in apps:
        app.close()


def test_api_console_and_callbacks_answer_from_one_app(serve: Any) -> None:
    asgi = serve(callback_secret="callback-secret-0123456789")
    assert _get(asgi, "/api/health").json() == {"status": "ok"}
    status = _get(asgi, "/api/status", Authorization=f"Bearer {TOKEN}")
    assert status.status_code == 200
    home = _get(asgi, "/")
    assert (home.status_code, home.headers["location"]) == (307, "/console/")
    login = _get(asgi, "/console/login")
    assert login.status_code == 200
    assert "token" in login.text.lower()
    assert _get(asgi, "/callbacks/health").json() == {"status": "ok"}
    unsigned = _get(asgi, "/callbacks/gateway?orderNumber=1&operation=deposited&status=1")
    assert unsigned.status_code == 403


def test_callbacks_are_not_served_without_a_key(serve: Any) -> None:
    asgi = serve()
    assert _get(asgi, "/callbacks/health").status_code == 404
    assert _get(asgi, "/api/health").status_code == 200


def test_without_an_admin_token_nothing_is_served(tmp_path: Path) -> None:
    app = build_app(Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}"))
    try:
        with pytest.raises(ConfigurationError, match="BILLING_ADMIN_TOKENS"):
            create_asgi_app(app, TokenConfig())
    finally:
        app.close()
