"""Resolving an attempt that waits for an operator over the admin API and the console, and
the console's "Retry now" refusing a card declined as lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.auth_tokens import Role, TokenConfig
from billing.entrypoints.http.admin.app import create_admin_app
from tests.support.console import Browser, console_app
from tests.support.world import ServiceWorld, sqlite_url
from tests.unit.entrypoints.test_admin_api import TOKEN_SETTING
from tests.unit.entrypoints.test_admin_api import TOKENS as API_TOKENS
from tests.unit.entrypoints.test_console import TOKENS as CONSOLE_TOKENS
from tests.unit.services.test_manual_retry_plan import LostCardGateway


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ServiceWorld]:
    with ServiceWorld.fast(sqlite_url(tmp_path), gateway=LostCardGateway()) as w:
        yield w


def _api(world: ServiceWorld, method: str, path: str, role: Role, **kw: Any) -> httpx.Response:
    asgi = create_admin_app(world.app, TokenConfig.parse(TOKEN_SETTING))
    headers = {"Authorization": f"Bearer {API_TOKENS[role]}"}

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.request(method, path, headers=headers, **kw)

    return asyncio.run(go())


def _browser(world: ServiceWorld) -> Browser:
    return Browser(console_app(world.app, world.clock, CONSOLE_TOKENS))


def test_the_api_resolves_for_operators_only_and_asks_the_gateway_first(
    world: ServiceWorld,
) -> None:
    sub_id, attempt = world.waiting_for_operator()
    path = f"/api/attempts/{attempt.id}/resolve"
    viewer = _api(world, "POST", path, Role.VIEWER, json={"reason": "checked"})
    assert viewer.status_code == 403
    pending = _api(world, "POST", path, Role.OPERATOR, json={"reason": "checked"})
    assert pending.status_code == 409 and "nothing changed" in pending.json()["message"]
    world.gateway.orders[attempt.order_number]["orderStatus"] = 2
    done = _api(world, "POST", path, Role.OPERATOR, json={"reason": "bank says paid"})
    assert done.status_code == 200, done.text
    assert (done.json()["result"], done.json()["state"]) == ("paid", "paid")
    assert world.invoices(sub_id)[0].status == "paid"


def test_the_console_offers_resolve_next_to_a_waiting_attempt(world: ServiceWorld) -> None:
    sub_id, attempt = world.waiting_for_operator()
    del world.gateway.orders[attempt.order_number]  # the bank never got it
    browser = _browser(world)
    try:
        browser.login("op-token")
        page = f"/subscriptions/{sub_id}"
        html = browser.get(page).text
        assert f"/attempts/{attempt.id}/resolve" in html
        csrf = browser.csrf(page)
        response = browser.post(
            f"/attempts/{attempt.id}/resolve", {"csrf": csrf, "reason": "called", "back": page}
        )
        assert response.status_code == 303
        shown = browser.get(page).text
        assert "checked: not charged" in shown
        assert f"/attempts/{attempt.id}/resolve" not in shown
    finally:
        browser.close()
    assert world.attempts(sub_id)[0].state == "failed"
    assert world.invoices(sub_id)[0].next_attempt_at is not None  # retried next pass


def test_the_consoles_retry_now_refuses_a_lost_card_with_the_reason(world: ServiceWorld) -> None:
    sub_id = world.subscribe("stolen-1")
    world.tick()
    browser = _browser(world)
    try:
        browser.login("op-token")
        page = f"/subscriptions/{sub_id}"
        response = browser.post(f"{page}/retry", {"csrf": browser.csrf(page), "back": page})
        assert response.status_code == 303
        shown = browser.get(page).text
        assert "Not done" in shown and "lost card" in shown
    finally:
        browser.close()
    assert len(world.attempts(sub_id)) == 1
    assert len(world.gateway.payment_calls) == 1
