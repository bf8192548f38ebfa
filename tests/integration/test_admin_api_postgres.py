"""The admin API on real PostgreSQL: concurrent repeats of one Idempotency-Key (row locks
and the UNIQUE key decide, not luck), and the queries of bulk retry, void and cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from billing.auth_tokens import TokenConfig
from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.entrypoints.http.admin.app import create_admin_app
from billing.gateway.port import RefundRequest
from billing.gateway.results import GatewayResult
from billing.settings import Settings
from billing.storage.tables import ChargeAttempt, Event, Refund, Subscription
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class SlowRefunds(FakeGateway):
    """refund.do takes a while, so that a second click arrives while the first is under way."""

    def refund(self, request: RefundRequest) -> GatewayResult:
        time.sleep(0.3)
        return super().refund(request)


@pytest.fixture
def world(pg_url: str) -> Iterator[tuple[App, Any, ManualClock, SlowRefunds]]:
    clock = ManualClock()
    gateway = SlowRefunds()
    app = build_app(
        Settings(database_url=pg_url),
        gateway=gateway,
        clock=clock,
        policy=DEFAULT_POLICY,
        dispatcher=RecordingDispatcher(),
    )
    asgi = create_admin_app(app, TokenConfig.parse(f"ops:operator:{TOKEN}"))
    yield app, asgi, clock, gateway
    app.close()


def _all(asgi: Any, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    """Send the requests at the same time (the sync endpoints run in a threadpool)."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return list(
                await asyncio.gather(
                    *(client.request(m, p, **{"headers": AUTH} | kw) for m, p, kw in requests)
                )
            )

    return asyncio.run(go())


def _count(app: App, table: type[Any], *where: Any) -> int:
    with app.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def _settle(app: App) -> None:
    app.scheduler.run_pass()
    dispatcher = app.dispatcher
    assert isinstance(dispatcher, RecordingDispatcher)
    while dispatcher.charges:
        charges, dispatcher.charges = dispatcher.charges, []
        for attempt_id in charges:
            app.charger.charge(attempt_id)


def _subscription(clock: ManualClock, binding: str, customer: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "binding_id": binding,
        "amount": 49900,
        "schedule": "0 3 1 * *",
        "start_at": clock().isoformat(),
        "reason": "signup",
    }


def test_concurrent_creates_with_one_key_create_one_subscription(world: Any) -> None:
    app, asgi, clock, _ = world
    body = _subscription(clock, "approve-1", "cust-1")
    headers = AUTH | {"Idempotency-Key": "signup-1"}
    responses = _all(
        asgi, *[("POST", "/api/subscriptions", {"json": body, "headers": headers})] * 4
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert _count(app, Subscription) == 1


def test_a_double_click_on_refund_refunds_once_on_postgres(world: Any) -> None:
    app, asgi, clock, gateway = world
    [created] = _all(
        asgi,
        ("POST", "/api/subscriptions", {"json": _subscription(clock, "approve-2", "cust-2")}),
    )
    _settle(app)
    with app.db.transaction() as s:
        attempt_id = s.scalars(select(ChargeAttempt.id)).one()
    request = (
        "POST",
        f"/api/attempts/{attempt_id}/refund",
        {"json": {"reason": "complaint"}, "headers": AUTH | {"Idempotency-Key": "click"}},
    )
    responses = _all(asgi, request, request)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(gateway.refund_calls) == 1
    assert _count(app, Refund) == 1
    assert sum(gateway.refunded.values()) == 49900
    [after] = _all(asgi, request)
    assert after.json()["state"] == "succeeded"
    assert after.headers["idempotent-replayed"] == "true"
    assert created.json()["id"] == after.json()["subscription_id"]


def test_bulk_retry_void_and_cancel_at_period_end_on_postgres(world: Any) -> None:
    app, asgi, clock, _ = world
    created = _all(
        asgi,
        *[
            ("POST", "/api/subscriptions", {"json": _subscription(clock, b, f"c-{b}")})
            for b in ("insufficient-1", "insufficient-2", "approve-3")
        ],
    )
    poor = sorted(r.json()["id"] for r in created[:2])
    fine = created[2].json()["id"]
    _settle(app)
    events = _count(app, Event)
    [dry] = _all(
        asgi,
        (
            "POST",
            "/api/retries/bulk",
            {"json": {"failure": "insufficient_funds", "dry_run": True, "reason": "r"}},
        ),
    )
    assert dry.json()["subscription_ids"] == poor
    assert _count(app, Event) == events
    [real] = _all(
        asgi,
        ("POST", "/api/retries/bulk", {"json": {"failure": "insufficient_funds", "reason": "r"}}),
    )
    assert real.json()["subscription_ids"] == poor
    _settle(app)
    [invoices] = _all(asgi, ("GET", "/api/invoices", {"params": {"status": "open"}}))
    first_open = invoices.json()[-1]["id"]
    [voided] = _all(asgi, ("POST", f"/api/invoices/{first_open}/void", {"json": {"reason": "g"}}))
    assert voided.json()["status"] == "void"
    [ending] = _all(
        asgi,
        (
            "POST",
            f"/api/subscriptions/{fine}/cancel",
            {"json": {"at_period_end": True, "reason": "r"}},
        ),
    )
    ends_at = ending.json()["ends_at"]
    assert ends_at is not None
    clock.advance(days=40)
    report = app.scheduler.run_pass()
    assert report.canceled >= 1
    [shown] = _all(asgi, ("GET", f"/api/subscriptions/{fine}", {}))
    assert shown.json()["status"] == "canceled"
    assert len(shown.json()["invoices"]) == 1
