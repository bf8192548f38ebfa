"""What Prometheus and an orchestrator see: ``/metrics`` parsed with prometheus_client's
own parser, ``/healthz`` and ``/readyz`` on the admin and callback apps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from starlette.applications import Starlette

from billing.auth_tokens import TokenConfig
from billing.bootstrap import build_app
from billing.entrypoints.http.admin.app import create_admin_app
from billing.entrypoints.http.callbacks import CallbackConfig, create_callback_app
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest
from billing.settings import Settings
from billing.storage.tables import ChargeAttempt
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher
from tests.support.world import ServiceWorld, sqlite_url

TOKEN = "viewer-token-0123456789abcdef"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def _get(asgi: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path)

    return asyncio.run(go())


def scrape(asgi: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    answer = _get(asgi, "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ServiceWorld]:
    with ServiceWorld.fast(sqlite_url(tmp_path)) as w:
        yield w


def test_metrics_show_charges_pause_backlog_open_invoices_and_operator_work(
    world: ServiceWorld,
) -> None:
    admin = create_admin_app(world.app, TokenConfig.parse(f"vera:viewer:{TOKEN}"))
    before = scrape(admin)
    assert before[("billing_charging_paused", ())] == 0
    assert before[("billing_due_backlog_seconds", ())] == 0
    assert before[("billing_metrics_database_up", ())] == 1

    world.subscribe("approve-1")
    world.tick()  # paid
    world.subscribe("auth-1")  # an access-denied answer pauses charging for everyone
    world.tick()
    late = world.subscribe("approve-2")  # due now, but no scheduler pass comes
    world.clock.advance(seconds=90)
    with world.db.transaction() as session:  # an attempt the gateway never settled
        session.execute(
            update(ChargeAttempt)
            .where(ChargeAttempt.subscription_id != late)
            .where(ChargeAttempt.state != "paid")
            .values(state="needs_operator")
        )

    after = scrape(admin)
    assert _total(after, "paid") == _total(before, "paid") + 1
    assert _total(after, "merchant_config") == _total(before, "merchant_config") + 1
    assert after[("billing_charging_paused", ())] == 1
    due_at = world.sub(late).next_charge_at
    assert due_at is not None
    expected_backlog = (world.clock() - due_at).total_seconds()
    assert expected_backlog >= 90
    assert after[("billing_due_backlog_seconds", ())] == expected_backlog
    assert after[("billing_open_invoices", (("status", "active"),))] == 1
    assert after[("billing_attempts_needing_operator", ())] == 1
    assert after[("billing_queue_messages", (("queue", "billing"),))] == 0


def _total(samples: dict[tuple[str, Any], float], category: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "billing_charge_attempts_total" and ("category", category) in labels
    )


def test_metrics_answer_without_the_database_gauges_when_it_is_down(tmp_path: Path) -> None:
    app = build_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'never-migrated.db'}"),
        gateway=FakeGateway(),
    )
    try:
        samples = scrape(create_admin_app(app, TokenConfig.parse(f"vera:viewer:{TOKEN}")))
    finally:
        app.close()
    assert samples[("billing_metrics_database_up", ())] == 0
    assert ("billing_charging_paused", ()) not in samples


def test_gateway_calls_are_timed_by_method_and_outcome() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "recurrentPayment" in request.url.path:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"errorCode": "6", "errorMessage": "no such order"})

    client = GatewayClient(
        GatewayConfig(base_url="https://gw.test/payment/rest", username="u", password="p"),
        transport=httpx.MockTransport(answer),
    )
    admin_samples = _histogram_counts()
    charge = ChargeRequest(
        order_number="1-1-abc", binding_id="binding-secret-1", amount=100, currency="643"
    )
    client.charge(charge)
    client.order_status(order_number="1-1-abc")
    client.close()
    after = _histogram_counts()
    timeout = ("recurrentPayment.do", "read_timeout")
    answered = ("getOrderStatusExtended.do", "answered")
    assert after[timeout] == admin_samples.get(timeout, 0) + 1
    assert after[answered] == admin_samples.get(answered, 0) + 1


def _histogram_counts() -> dict[tuple[str, str], float]:
    from prometheus_client import REGISTRY, generate_latest

    counts = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            if sample.name == "billing_gateway_request_seconds_count":
                counts[(sample.labels["method"], sample.labels["outcome"])] = sample.value
    return counts


# -- health and readiness ----------------------------------------------------------------


def _admin(tmp_path: Path, *, migrate: bool, redis_url: str | None = None) -> Any:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}", redis_url=redis_url)
    app = build_app(settings, gateway=FakeGateway(), clock=ManualClock())
    if migrate:
        app.db.upgrade()
    return app, create_admin_app(app, TokenConfig.parse(f"vera:viewer:{TOKEN}"))


def test_readyz_fails_until_the_database_is_migrated_to_head(tmp_path: Path) -> None:
    app, admin = _admin(tmp_path, migrate=False)
    try:
        assert _get(admin, "/healthz").json() == {"status": "ok"}
        not_ready = _get(admin, "/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["migrations"].startswith("not migrated")
        app.db.upgrade("0006")  # an older schema than the code's
        behind = _get(admin, "/readyz")
        assert behind.status_code == 503
        assert "run `billing db upgrade`" in behind.json()["checks"]["migrations"]
        app.db.upgrade()
        ready = _get(admin, "/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    finally:
        app.close()


def test_readyz_fails_when_redis_does_not_answer(tmp_path: Path, redis_url: str) -> None:
    app, admin = _admin(tmp_path, migrate=True, redis_url=UNREACHABLE_REDIS)
    try:
        answer = _get(admin, "/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["redis"].startswith("unreachable")
        assert "127.0.0.1:1" not in answer.text  # no URL (it could carry a password)
    finally:
        app.close()
    (tmp_path / "ok").mkdir()
    app, admin = _admin(tmp_path / "ok", migrate=True, redis_url=redis_url)
    try:
        assert _get(admin, "/readyz").status_code == 200
    finally:
        app.close()


def _callbacks(tmp_path: Path, redis_url: str | None) -> tuple[Any, Starlette]:
    app = build_app(Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}"))
    config = CallbackConfig(hmac_secret="callback-secret-0123456789", redis_url=redis_url)
    callbacks = create_callback_app(app.db, RecordingDispatcher(), config)
    return app, callbacks


def test_the_callback_app_has_health_and_readiness_too(tmp_path: Path) -> None:
    app, callbacks = _callbacks(tmp_path, None)
    try:
        assert _get(callbacks, "/healthz").status_code == 200
        assert _get(callbacks, "/readyz").status_code == 503
        app.db.upgrade()
        assert _get(callbacks, "/readyz").json()["checks"] == {
            "database": "ok",
            "migrations": "ok",
        }
    finally:
        app.close()
