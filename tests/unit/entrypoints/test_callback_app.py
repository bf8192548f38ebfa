"""The gateway callback endpoint, end to end through ASGI on an embedded SQLite database.

A verified callback only enqueues a re-check of the order; a forged, unsigned or malformed
one is refused and leaves no trace but a log line; a broker outage makes the gateway retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from starlette.applications import Starlette

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.entrypoints.http.callbacks import (
    CallbackConfig,
    RepeatFilter,
    create_callback_app,
)
from billing.errors import ConfigurationError
from billing.gateway.callback_signature import sign_hmac, sign_rsa
from billing.services.actions.subscriptions import SubscriptionActions
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Event
from tests.support.broker import FlakyDispatcher
from tests.support.fakes import ManualClock

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"
SECRET = "callback-secret-0123456789"
PATH = "/callbacks/gateway"


@dataclass
class World:
    db: Database
    clock: ManualClock
    dispatcher: FlakyDispatcher
    attempt: ChargeAttempt

    def app(self, **config: Any) -> Starlette:
        settings = CallbackConfig(**({"hmac_secret": SECRET} | config))
        return create_callback_app(self.db, self.dispatcher, settings, clock=self.clock)

    def params(self, **overrides: str) -> dict[str, str]:
        params = {
            "mdOrder": "3ff6962a-7dcc-4283-ab50-a6d7dd3386fe",
            "orderNumber": self.attempt.order_number,
            "operation": "deposited",
            "status": "1",
            "callbackCreationDate": "Mon Dec 01 03:00:05 MSK 2026",
        }
        return params | overrides

    def signed(self, **overrides: str) -> dict[str, str]:
        params = self.params(**overrides)
        return params | {"checksum": sign_hmac(params, SECRET), "sign_alias": "SHA-256"}

    def events(self, kind: str) -> list[Event]:
        with self.db.transaction() as s:
            return list(s.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))

    def current_attempt(self) -> ChargeAttempt:
        with self.db.transaction() as s:
            return s.get_one(ChargeAttempt, self.attempt.id)


def send(app: Starlette, method: str = "GET", **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as client:
            return await client.request(method, kwargs.pop("path", PATH), **kwargs)

    return asyncio.run(go())


def callback_world(tmp_path: Path) -> Iterator[World]:
    """SQLite, one charge attempt, a recording dispatcher: the callback tests' world."""
    db = Database(f"sqlite:///{tmp_path / 'billing.db'}")
    db.upgrade()
    clock = ManualClock()
    dispatcher = FlakyDispatcher()
    policy = load_policy(FAST_POLICY)
    SubscriptionActions(db, clock=clock).create(
        NewSubscription(
            customer_id="cust-1",
            binding_id="approve-1",
            amount=49900,
            schedule="0 3 1 * *",
            start_at=clock(),
        ),
        actor="crm",
        reason="signup",
    )
    Scheduler(db, dispatcher, policy, clock=clock).run_pass()
    with db.transaction() as s:
        [attempt] = s.scalars(select(ChargeAttempt)).all()
    dispatcher.charges.clear()
    yield World(db, clock, dispatcher, attempt)
    db.dispose()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from callback_world(tmp_path)


def test_a_signed_callback_enqueues_a_status_recheck_and_marks_nothing(world: World) -> None:
    response = send(world.app(), params=world.signed())
    assert response.status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]
    [event] = world.events("callback_received")
    assert event.attempt_id == world.attempt.id
    assert event.invoice_id == world.attempt.invoice_id
    assert event.subscription_id == world.attempt.subscription_id
    assert event.actor == "gateway"
    assert "'deposited'" in event.reason and "status '1'" in event.reason
    after = world.current_attempt()
    assert (after.state, after.category) == (world.attempt.state, world.attempt.category)


def test_post_form_and_json_bodies_are_accepted_like_get(world: World) -> None:
    app = world.app()
    form = send(app, "POST", data=world.signed(operation="approved"))
    as_json = send(app, "POST", json=world.signed(operation="reversed"))
    assert (form.status_code, as_json.status_code) == (200, 200)
    assert world.dispatcher.reconciles == [world.attempt.id, world.attempt.id]


def test_json_integers_are_signed_as_their_decimal_text(world: World) -> None:
    params = world.params(operation="refunded")
    body: dict[str, Any] = params | {"status": 1, "amount": 49900}
    checksum = sign_hmac(params | {"status": "1", "amount": "49900"}, SECRET)
    response = send(world.app(), "POST", json=body | {"checksum": checksum})
    assert response.status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]


def test_the_creation_date_with_spaces_is_signed_however_it_is_encoded(world: World) -> None:
    signed = world.signed()
    date = signed["callbackCreationDate"]
    query = "&".join(f"{k}={v}" for k, v in signed.items() if k != "callbackCreationDate")
    app = world.app()
    plus = send(app, path=f"{PATH}?{query}&callbackCreationDate={date.replace(' ', '+')}")
    world.clock.advance(seconds=61)
    percent = send(app, path=f"{PATH}?{query}&callbackCreationDate={date.replace(' ', '%20')}")
    assert (plus.status_code, percent.status_code) == (200, 200)
    dateless = send(app, path=f"{PATH}?{query}")
    assert dateless.status_code == 403  # the date is part of the signed string
    assert len(world.dispatcher.reconciles) == 2


def test_a_forged_checksum_is_refused_and_leaves_no_trace(world: World) -> None:
    forged = world.signed() | {"operation": "declinedByTimeout", "status": "0"}
    response = send(world.app(), params=forged)
    assert response.status_code == 403
    assert world.dispatcher.reconciles == []
    assert world.events("callback_received") == []
    assert world.events("callback_unknown_order") == []


def test_an_unsigned_callback_is_refused_while_a_key_is_configured(world: World) -> None:
    response = send(world.app(), params=world.params())
    assert response.status_code == 403
    assert world.dispatcher.reconciles == []
    assert world.events("callback_received") == []


def test_a_replay_is_acted_on_once_per_minute(world: World) -> None:
    app = world.app()
    signed = world.signed()
    assert send(app, params=signed).status_code == 200
    world.clock.advance(seconds=59)
    assert send(app, params=signed).status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]
    assert len(world.events("callback_received")) == 1
    world.clock.advance(seconds=2)
    assert send(app, params=signed).status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id, world.attempt.id]
    assert len(world.events("callback_received")) == 2
    # another operation on the same order is news, not a replay
    assert send(app, params=world.signed(operation="refunded")).status_code == 200
    assert len(world.dispatcher.reconciles) == 3


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda p: {k: v for k, v in p.items() if k not in ("orderNumber", "mdOrder")},
                     id="no-order"),
        pytest.param(lambda p: p | {"checksum": "not-hex!"}, id="non-hex-checksum"),
        pytest.param(lambda p: p | {"description": "x" * 1025}, id="over-long-value"),
        pytest.param(lambda p: p | {f"extra{i}": "v" for i in range(100)}, id="too-many-params"),
    ],
)  # fmt: skip
def test_a_malformed_callback_is_refused_with_400(world: World, mangle: Any) -> None:
    response = send(world.app(), params=mangle(world.signed()))
    assert response.status_code == 400
    assert world.dispatcher.reconciles == []
    assert world.events("callback_received") == []


def test_a_parameter_given_twice_is_malformed(world: World) -> None:
    signed = world.signed()
    query = "&".join(f"{k}={v}" for k, v in signed.items()) + "&status=0"
    assert send(world.app(), path=f"{PATH}?{query}").status_code == 400
    assert world.dispatcher.reconciles == []


def test_an_unknown_order_is_acknowledged_and_recorded(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="billing.callbacks")
    response = send(world.app(), params=world.signed(orderNumber="999-1-deadbeef"))
    assert response.status_code == 200  # the gateway stops retrying
    assert world.dispatcher.reconciles == []
    [event] = world.events("callback_unknown_order")
    assert "999-1-deadbeef" in event.reason and event.actor == "gateway"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("999-1-deadbeef" in r.getMessage() for r in warnings)


def test_without_an_order_number_the_attempt_is_found_by_md_order(world: World) -> None:
    with world.db.transaction() as s:
        s.get_one(ChargeAttempt, world.attempt.id).gateway_order_id = "md-42"
    params = {k: v for k, v in world.params(mdOrder="md-42").items() if k != "orderNumber"}
    response = send(world.app(), params=params | {"checksum": sign_hmac(params, SECRET)})
    assert response.status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def test_rsa_signed_callbacks_verify_with_the_configured_public_key(world: World) -> None:
    key, pem = _rsa_pair()
    impostor, _ = _rsa_pair()
    app = world.app(hmac_secret=None, rsa_public_key_pem=pem)
    params = world.params()
    good = send(app, params=params | {"checksum": sign_rsa(params, key)})
    forged_params = world.params(operation="reversed")
    forged = send(app, params=forged_params | {"checksum": sign_rsa(forged_params, impostor)})
    assert (good.status_code, forged.status_code) == (200, 403)
    assert world.dispatcher.reconciles == [world.attempt.id]


def test_a_broker_outage_answers_503_and_the_retry_is_acted_on(world: World) -> None:
    app = world.app()
    world.dispatcher.broker_down = True
    assert send(app, params=world.signed()).status_code == 503
    assert world.events("callback_received") == []
    world.dispatcher.broker_down = False
    world.clock.advance(seconds=5)  # the gateway's retry, well within the repeat window
    assert send(app, params=world.signed()).status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]


def test_secrets_and_checksums_never_reach_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = world.app()
    signed = world.signed()
    forged = world.signed() | {"status": "0"}
    send(app, params=signed)
    send(app, params=forged)
    send(app, params=forged | {"checksum": "ab"})
    assert any(
        "bad checksum" in r.getMessage() and world.attempt.order_number in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
    # (the test's own HTTP client logs the URL it requested; only our lines count)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("billing"))
    assert SECRET not in ours
    assert signed["checksum"] not in ours
    assert signed["checksum"][:16] not in ours
    assert SECRET not in repr(CallbackConfig(hmac_secret=SECRET))


def test_a_key_is_required_unless_unsigned_callbacks_are_allowed(world: World) -> None:
    with pytest.raises(ConfigurationError, match="BILLING_CALLBACK_SECRET"):
        world.app(hmac_secret=None)
    with pytest.raises(ConfigurationError, match="empty"):
        world.app(hmac_secret="  ")
    with pytest.raises(ConfigurationError, match="PEM"):
        world.app(hmac_secret=None, rsa_public_key_pem="garbage")
    open_app = world.app(hmac_secret=None, require_signature=False)
    assert send(open_app, params=world.params()).status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]


def test_health_and_unsupported_methods(world: World) -> None:
    app = world.app()
    assert send(app, path="/callbacks/health").json() == {"status": "ok"}
    assert send(app, "PUT", params=world.signed()).status_code == 405
    assert send(app, "HEAD", params=world.signed()).status_code == 405
    assert world.dispatcher.reconciles == []


def test_repeat_filter_forgets_keys_after_the_window_and_stays_bounded() -> None:
    clock = ManualClock()
    seen = RepeatFilter(timedelta(seconds=60), clock=clock, max_entries=2)
    assert seen.claim("a")
    assert not seen.claim("a")
    clock.advance(seconds=60)
    assert seen.claim("a")
    seen.release("a")
    assert seen.claim("a")
    assert seen.claim("b") and seen.claim("c")
    assert len(seen) == 2
    assert seen.claim("a")  # evicted as the oldest
