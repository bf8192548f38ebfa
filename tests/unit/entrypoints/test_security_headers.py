"""Security headers on every answer, and oversized bodies refused before authentication."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.auth_tokens import TokenConfig
from billing.bootstrap import build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.entrypoints.http.admin.app import create_admin_app
from billing.entrypoints.http.asgi import create_asgi_app
from billing.entrypoints.http.callbacks import CallbackConfig, create_callback_app
from billing.settings import Settings
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

TOKEN = "operator-token-0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}")


@pytest.fixture
def admin(settings: Settings) -> Iterator[Any]:
    app = build_app(settings, gateway=FakeGateway(), clock=ManualClock(), policy=DEFAULT_POLICY)
    app.db.upgrade()
    yield create_asgi_app(app, TokenConfig.parse(f"anna:operator:{TOKEN}"))
    app.close()


def _request(asgi: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="https://admin.test") as c:
            return await c.request(method, path, **kwargs)

    return asyncio.run(go())


def _assert_hardened(response: httpx.Response) -> None:
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "authenticated", "status"),
    [
        ("/api/health", False, 200),
        ("/api/subscriptions", True, 200),
        ("/api/subscriptions", False, 401),
        ("/console/login", False, 200),
        ("/console/", False, 303),
        ("/docs", False, 200),
    ],
)
def test_every_admin_and_console_answer_carries_the_security_headers(
    admin: Any, path: str, authenticated: bool, status: int
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if authenticated else {}
    response = _request(admin, "GET", path, headers=headers)
    assert response.status_code == status
    _assert_hardened(response)


def test_console_pages_may_not_run_scripts_from_elsewhere(admin: Any) -> None:
    csp = _request(admin, "GET", "/console/login").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src" not in csp


def _raw_call(
    asgi: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, int]:
    """Drive the ASGI app by hand: (status, how many body chunks it pulled)."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {
                "type": "http.request",
                "body": chunks[pulled - 1],
                "more_body": pulled < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/api/subscriptions",
        "raw_path": b"/api/subscriptions",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"admin.test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("admin.test", 443),
        "state": {},
    }
    asyncio.run(asgi(scope, receive, send))
    return status, pulled


def test_a_200_mb_body_is_refused_from_its_content_length_without_reading_it(admin: Any) -> None:
    # No token either: the size is refused first, before authentication.
    status, pulled = _raw_call(admin, [(b"content-length", b"209715200")], [b"x" * 1024] * 10)
    assert status == 413
    assert pulled == 0


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(admin: Any) -> None:
    chunk = b"x" * (64 * 1024)
    status, pulled = _raw_call(admin, [(b"transfer-encoding", b"chunked")], [chunk] * 64)
    assert status == 413
    assert pulled <= 17  # 1 MiB in 64 KiB chunks, and one more that passes it


def test_the_limit_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}", max_request_bytes=2048)
    app = build_app(settings, gateway=FakeGateway(), clock=ManualClock(), policy=DEFAULT_POLICY)
    app.db.upgrade()
    asgi = create_admin_app(app, TokenConfig.parse(f"anna:operator:{TOKEN}"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    big = _request(asgi, "POST", "/api/subscriptions", content=b"{" + b" " * 4096, headers=auth)
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    small = _request(asgi, "POST", "/api/subscriptions", json={}, headers=auth)
    assert small.status_code == 422
    app.close()


def test_the_callback_app_refuses_a_huge_body_early_and_carries_the_headers(
    tmp_path: Path,
) -> None:
    from billing.storage.database import Database

    db = Database(f"sqlite:///{tmp_path / 'cb.db'}")
    db.upgrade()
    asgi = create_callback_app(
        db, RecordingDispatcher(), CallbackConfig(hmac_secret="s" * 32), clock=ManualClock()
    )

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):  # 640 MB if nobody stops reading
            yield b"a=" + b"x" * (64 * 1024)

    response = _request(asgi, "POST", "/callbacks/gateway", content=endless())
    assert response.status_code == 413
    _assert_hardened(_request(asgi, "GET", "/callbacks/health"))
    db.dispose()
