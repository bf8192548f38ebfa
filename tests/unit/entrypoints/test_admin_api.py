"""The admin API over httpx.ASGITransport (no starlette/fastapi TestClient: it warns).

The app is built from the real composition root (billing.bootstrap.build_app) on SQLite, with
the fake gateway, a manual clock and a recording dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from billing.auth_tokens import Role, TokenConfig
from billing.bootstrap import App, build_app
from billing.domain.circuit_breaker import Circuit, CircuitState
from billing.domain.policy_file import load_policy
from billing.entrypoints.http.admin.app import create_admin_app
from billing.errors import ConfigurationError
from billing.settings import Settings, load_settings
from billing.storage.circuit_row import save_circuit
from billing.storage.tables import ChargeAttempt, Event, Refund, Subscription
from tests.support.broker import FlakyDispatcher
from tests.support.fakes import FakeGateway, ManualClock

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"
TOKENS = {
    Role.VIEWER: "viewer-token-0123456789abcdef",
    Role.OPERATOR: "operator-token-0123456789abcdef",
    Role.BACKEND: "backend-token-0123456789abcdef",
}
TOKEN_SETTING = ",".join(
    f"{name}:{role.value}:{token}"
    for name, role, token in (
        ("grafana", Role.VIEWER, TOKENS[Role.VIEWER]),
        ("ops-anna", Role.OPERATOR, TOKENS[Role.OPERATOR]),
        ("crm", Role.BACKEND, TOKENS[Role.BACKEND]),
    )
)


@dataclass
class Api:
    app: App
    asgi: FastAPI
    clock: ManualClock
    gateway: FakeGateway
    dispatcher: FlakyDispatcher

    def call(
        self,
        method: str,
        path: str,
        *,
        role: Role | None = Role.OPERATOR,
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif role is not None:
            headers["Authorization"] = f"Bearer {TOKENS[role]}"

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
                return await client.request(method, path, headers=headers, **kwargs)

        return asyncio.run(go())

    def create(self, binding: str = "approve-1", **overrides: Any) -> dict[str, Any]:
        body = {
            "customer_id": "cust-1",
            "binding_id": binding,
            "amount": 49900,
            "schedule": "0 3 1 * *",
            "start_at": self.clock().isoformat(),
            "reason": "signup",
        } | overrides
        response = self.call("POST", "/api/subscriptions", role=Role.BACKEND, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def work(self) -> None:
        while self.dispatcher.charges:
            charges, self.dispatcher.charges = self.dispatcher.charges, []
            for attempt_id in charges:
                self.app.charger.charge(attempt_id)

    def tick(self, seconds: float = 0) -> None:
        self.clock.advance(seconds=seconds)
        self.app.scheduler.run_pass()
        self.work()

    def count(self, table: type[Any], *where: Any) -> int:
        with self.app.db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(table).where(*where)) or 0)

    def attempts(self, sub_id: int) -> list[ChargeAttempt]:
        with self.app.db.transaction() as s:
            return list(
                s.scalars(select(ChargeAttempt).where(ChargeAttempt.subscription_id == sub_id))
            )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}")
    clock = ManualClock()
    gateway = FakeGateway()
    dispatcher = FlakyDispatcher()
    app = build_app(
        settings,
        gateway=gateway,
        clock=clock,
        policy=load_policy(FAST_POLICY),
        dispatcher=dispatcher,
    )
    app.db.upgrade()
    asgi = create_admin_app(app, TokenConfig.parse(TOKEN_SETTING))
    yield Api(app, asgi, clock, gateway, dispatcher)
    app.close()


# -- auth -------------------------------------------------------------------------------------


def test_no_token_or_an_unknown_token_is_401(api: Api) -> None:
    missing = api.call("GET", "/api/subscriptions", role=None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "unauthorized"
    wrong = api.call("GET", "/api/subscriptions", token=TOKENS[Role.OPERATOR] + "x")
    assert wrong.status_code == 401
    basic = api.call("GET", "/api/subscriptions", role=None, headers={"Authorization": "Basic x"})
    assert basic.status_code == 401
    assert api.call("GET", "/api/health", role=None).json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "allowed"),
    [
        (Role.VIEWER, "GET", "/api/status", None, True),
        (Role.BACKEND, "GET", "/api/audit", None, True),
        (Role.VIEWER, "POST", "/api/subscriptions/1/pause", {"reason": "r"}, False),
        (Role.BACKEND, "POST", "/api/subscriptions/1/pause", {"reason": "r"}, True),
        (Role.OPERATOR, "POST", "/api/subscriptions/1/pause", {"reason": "r"}, True),
        (Role.BACKEND, "POST", "/api/subscriptions/1/retry", {"reason": "r"}, False),
        (Role.BACKEND, "POST", "/api/attempts/1/refund", {"reason": "r"}, False),
        (Role.VIEWER, "POST", "/api/invoices/1/void", {"reason": "r"}, False),
        (Role.BACKEND, "POST", "/api/retries/bulk", {"failure": "x", "reason": "r"}, False),
    ],
)
def test_roles(
    api: Api, role: Role, method: str, path: str, body: dict[str, Any] | None, allowed: bool
) -> None:
    api.create()
    response = api.call(method, path, role=role, json=body, headers={"Idempotency-Key": "k"})
    if allowed:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert api.count(Event, Event.actor != "crm") == 0


def test_tokens_never_reach_the_logs_or_reprs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api.create()
    api.call("GET", "/api/subscriptions/1")
    api.call("GET", "/api/subscriptions", token="guess-0123456789abcdefghij")
    config = TokenConfig.parse(TOKEN_SETTING)
    text = "\n".join(r.getMessage() for r in caplog.records) + repr(config)
    for token in TOKENS.values():
        assert token not in text
    assert "ops-anna:operator" in repr(config)


def test_token_settings_are_checked_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_ADMIN_TOKENS", "anna:operator:short")
    with pytest.raises(ConfigurationError, match="BILLING_ADMIN_TOKENS") as bad:
        load_settings()
    assert "short" not in str(bad.value)
    monkeypatch.setenv("BILLING_ADMIN_TOKENS", "anna:boss:" + "x" * 30)
    with pytest.raises(ConfigurationError, match="unknown role"):
        load_settings()
    monkeypatch.setenv("BILLING_ADMIN_TOKENS", TOKEN_SETTING)
    settings = load_settings()
    assert settings.admin_tokens is not None
    assert TOKENS[Role.VIEWER] not in repr(settings)
    with pytest.raises(ConfigurationError, match="at least one"):
        create_admin_app(None, TokenConfig())  # type: ignore[arg-type]


# -- input and errors -------------------------------------------------------------------------


def test_bad_input_is_422_naming_the_field(api: Api) -> None:
    body = {
        "customer_id": "c",
        "binding_id": "approve-1",
        "amount": "lots",
        "schedule": "0 3 1 * *",
        "reason": "r",
    }
    response = api.call("POST", "/api/subscriptions", role=Role.BACKEND, json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith("amount:")
    assert response.json()["fields"][0]["field"] == "amount"
    no_reason = api.call("POST", "/api/subscriptions/1/pause", json={})
    assert no_reason.status_code == 422 and no_reason.json()["message"].startswith("reason:")
    blank = api.call("POST", "/api/subscriptions/1/pause", json={"reason": "   "})
    assert blank.status_code == 422
    extra = api.call("POST", "/api/subscriptions/1/pause", json={"reason": "r", "force": True})
    assert extra.status_code == 422 and "force" in extra.json()["message"]
    domain = api.call(
        "POST", "/api/subscriptions", role=Role.BACKEND, json=body | {"amount": 1, "schedule": "x"}
    )
    assert domain.status_code == 422 and "cron" in domain.json()["message"]
    naive = api.call("GET", "/api/subscriptions", params={"failing_since": "2026-12-01T00:00"})
    assert naive.status_code == 422 and "failing_since" in naive.json()["message"]
    assert api.call("GET", "/api/subscriptions/0").status_code == 422
    assert api.count(Subscription) == 0


def test_domain_errors_map_to_status_codes(api: Api) -> None:
    missing = api.call("GET", "/api/subscriptions/42")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    sub = api.create()
    api.call("POST", f"/api/subscriptions/{sub['id']}/cancel", json={"reason": "bye"})
    again = api.call("POST", f"/api/subscriptions/{sub['id']}/cancel", json={"reason": "bye"})
    assert (again.status_code, again.json()["error"]) == (409, "conflict")


# -- subscriptions ----------------------------------------------------------------------------


def test_create_is_idempotent_with_the_same_key(api: Api) -> None:
    body = {
        "customer_id": "cust-1",
        "binding_id": "approve-1",
        "amount": 49900,
        "schedule": "0 3 1 * *",
        "reason": "signup",
    }
    headers = {"Idempotency-Key": "signup-cust-1"}
    first = api.call("POST", "/api/subscriptions", role=Role.BACKEND, json=body, headers=headers)
    again = api.call("POST", "/api/subscriptions", role=Role.BACKEND, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = api.call(
        "POST",
        "/api/subscriptions",
        role=Role.BACKEND,
        json=body | {"amount": 100},
        headers=headers,
    )
    assert other.status_code == 409
    assert api.count(Subscription) == 1


def test_subscription_lifecycle_and_detail(api: Api) -> None:
    sub = api.create("insufficient-1")
    api.tick()
    listed = api.call("GET", "/api/subscriptions", params={"failure": "insufficient_funds"})
    assert [s["id"] for s in listed.json()] == [sub["id"]]
    since = api.call("GET", "/api/subscriptions", params={"failing_since": "2026-12-02T00:00:00Z"})
    assert since.json() == []
    detail = api.call("GET", f"/api/subscriptions/{sub['id']}", role=Role.VIEWER).json()
    assert detail["status"] == "past_due"
    assert detail["invoices"][0]["attempts"][0]["reason"] == "insufficient_funds"
    assert any(line.startswith("insufficient funds on 1 Dec") for line in detail["timeline"])
    assert {"from", "to"} <= detail["events"][0].keys()
    patched = api.call(
        "PATCH",
        f"/api/subscriptions/{sub['id']}",
        role=Role.BACKEND,
        json={"amount": 59900, "reason": "upgrade"},
    )
    assert patched.status_code == 200 and patched.json()["amount"] == 59900
    paused = api.call(
        "POST", f"/api/subscriptions/{sub['id']}/pause", role=Role.BACKEND, json={"reason": "r"}
    )
    assert (paused.json()["status"], paused.json()["paused_from"]) == ("paused", "past_due")
    binding = api.call(
        "POST",
        f"/api/subscriptions/{sub['id']}/binding",
        role=Role.BACKEND,
        json={"binding_id": "approve-2", "reason": "new card"},
    )
    assert binding.status_code == 200 and binding.json()["binding"] == "…ve-2"
    resumed = api.call(
        "POST", f"/api/subscriptions/{sub['id']}/resume", role=Role.BACKEND, json={"reason": "r"}
    )
    assert resumed.json()["status"] == "past_due"
    ended = api.call(
        "POST",
        f"/api/subscriptions/{sub['id']}/cancel",
        role=Role.BACKEND,
        json={"at_period_end": True, "reason": "downgrade"},
    )
    assert ended.json()["ends_at"] is not None and ended.json()["status"] == "past_due"
    audit = api.call("GET", "/api/audit", params={"limit": 3}).json()
    assert [e["actor"] for e in audit] == ["crm", "crm", "crm"]
    assert audit[0]["kind"] == "cancel_scheduled"


# -- retries ----------------------------------------------------------------------------------


def test_manual_retry_rules(api: Api) -> None:
    paid = api.create()
    api.tick()
    response = api.call("POST", f"/api/subscriptions/{paid['id']}/retry", json={"reason": "r"})
    assert response.status_code == 409 and "no open invoice" in response.json()["message"]

    busy = api.create("approve-2", customer_id="cust-2")
    api.app.scheduler.run_pass()  # stored and enqueued; not settled yet
    response = api.call("POST", f"/api/subscriptions/{busy['id']}/retry", json={"reason": "r"})
    assert response.status_code == 409 and "in flight" in response.json()["message"]
    api.work()

    failing = api.create("insufficient-3", customer_id="cust-3")
    api.tick()
    api.call("POST", f"/api/subscriptions/{failing['id']}/pause", json={"reason": "hold"})
    response = api.call("POST", f"/api/subscriptions/{failing['id']}/retry", json={"reason": "r"})
    assert response.status_code == 409 and "paused" in response.json()["message"]
    api.call("POST", f"/api/subscriptions/{failing['id']}/resume", json={"reason": "go"})

    with api.app.db.transaction() as s:
        save_circuit(
            s,
            Circuit(state=CircuitState.OPEN, reason="access denied", retry_at=api.clock()),
            api.clock(),
        )
    response = api.call("POST", f"/api/subscriptions/{failing['id']}/retry", json={"reason": "r"})
    assert response.status_code == 409
    assert response.json()["error"] == "charging_paused"
    assert "access denied" in response.json()["message"]

    with api.app.db.transaction() as s:
        save_circuit(s, Circuit(), api.clock())
    ok = api.call("POST", f"/api/subscriptions/{failing['id']}/retry", json={"reason": "r"})
    assert ok.status_code == 200 and ok.json()["attempt_id"] in api.dispatcher.charges


def test_a_broker_outage_is_503_and_the_retry_is_kept(api: Api) -> None:
    sub = api.create("insufficient-1")
    api.tick()
    api.dispatcher.broker_down = True
    response = api.call("POST", f"/api/subscriptions/{sub['id']}/retry", json={"reason": "r"})
    assert response.status_code == 503
    assert "scheduler will send it" in response.json()["message"]
    [_, manual] = api.attempts(sub["id"])
    assert (manual.trigger, manual.state) == ("manual", "pending")


def test_bulk_retry_dry_run_writes_nothing(api: Api) -> None:
    ids = [api.create(f"insufficient-{n}", customer_id=f"c{n}")["id"] for n in range(2)]
    api.create("approve-9", customer_id="c9")
    api.tick()
    events, attempts = api.count(Event), api.count(ChargeAttempt)
    dry = api.call(
        "POST",
        "/api/retries/bulk",
        json={"filter": "insufficient_funds", "dry_run": True, "reason": "funds back"},
    )
    assert dry.status_code == 200
    assert (dry.json()["count"], dry.json()["subscription_ids"]) == (2, ids)
    assert (api.count(Event), api.count(ChargeAttempt)) == (events, attempts)
    real = api.call(
        "POST", "/api/retries/bulk", json={"failure": "soft_decline", "reason": "funds back"}
    )
    assert real.json()["count"] == 2 and len(api.dispatcher.charges) == 2
    bad = api.call("POST", "/api/retries/bulk", json={"failure": "DROP TABLE", "reason": "r"})
    assert bad.status_code == 422 and bad.json()["message"].startswith("failure:")


# -- invoices and payments --------------------------------------------------------------------


def test_invoices_list_show_void(api: Api) -> None:
    sub = api.create("insufficient-1")
    api.tick()
    [invoice] = api.call("GET", "/api/invoices", params={"status": "open"}).json()
    assert invoice["subscription_id"] == sub["id"]
    shown = api.call("GET", f"/api/invoices/{invoice['id']}", role=Role.VIEWER).json()
    assert shown["attempts"][0]["state"] == "declined"
    voided = api.call("POST", f"/api/invoices/{invoice['id']}/void", json={"reason": "goodwill"})
    assert voided.json()["status"] == "void"
    again = api.call("POST", f"/api/invoices/{invoice['id']}/write-off", json={"reason": "x"})
    assert again.status_code == 409
    paid = api.create("approve-2", customer_id="c2")
    api.tick()
    [paid_invoice] = api.call("GET", "/api/invoices", params={"subscription_id": paid["id"]}).json()
    refused = api.call("POST", f"/api/invoices/{paid_invoice['id']}/void", json={"reason": "x"})
    assert refused.status_code == 409 and "refund" in refused.json()["message"]


def _paid_attempt(api: Api) -> int:
    sub = api.create()
    api.tick()
    [attempt] = api.attempts(sub["id"])
    return attempt.id


def test_a_double_click_on_refund_refunds_once(api: Api) -> None:
    attempt_id = _paid_attempt(api)
    headers = {"Idempotency-Key": "refund-click-1"}
    body = {"amount": 10000, "reason": "customer complaint"}
    path = f"/api/attempts/{attempt_id}/refund"
    first = api.call("POST", path, json=body, headers=headers)
    second = api.call("POST", path, json=body, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["state"] == "succeeded"
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(api.gateway.refund_calls) == 1
    assert api.count(Refund) == 1
    no_key = api.call("POST", path, json=body)
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["message"]


def test_partial_refunds_are_capped(api: Api) -> None:
    attempt_id = _paid_attempt(api)
    path = f"/api/attempts/{attempt_id}/refund"
    for n in (1, 2):
        response = api.call(
            "POST", path, json={"amount": 20000, "reason": "r"}, headers={"Idempotency-Key": f"{n}"}
        )
        assert response.json()["state"] == "succeeded"
    over = api.call(
        "POST", path, json={"amount": 20000, "reason": "r"}, headers={"Idempotency-Key": "3"}
    )
    assert over.status_code == 409 and "only 9900" in over.json()["message"]
    rest = api.call("POST", path, json={"reason": "r"}, headers={"Idempotency-Key": "4"})
    assert (rest.json()["amount"], rest.json()["refundable_left"]) == (9900, 0)
    negative = api.call(
        "POST", path, json={"amount": -5, "reason": "r"}, headers={"Idempotency-Key": "5"}
    )
    assert negative.status_code == 422 and negative.json()["message"].startswith("amount:")


def test_an_unknown_refund_says_so(api: Api) -> None:
    attempt_id = _paid_attempt(api)
    api.gateway.refund_mode = "timeout"
    response = api.call(
        "POST",
        f"/api/attempts/{attempt_id}/refund",
        json={"reason": "r"},
        headers={"Idempotency-Key": "t-1"},
    )
    assert response.status_code == 200
    assert response.json()["state"] == "unknown"
    assert api.call("GET", "/api/status").json()["refunds_unknown"] == 1


def test_reverse_is_refused_after_the_day_of_payment(api: Api) -> None:
    attempt_id = _paid_attempt(api)
    api.clock.advance(days=1)
    late = api.call("POST", f"/api/attempts/{attempt_id}/reverse", json={"reason": "r"})
    assert late.status_code == 409
    assert "only possible on the day of payment" in late.json()["message"]
    assert api.gateway.reverse_calls == []
    today = _paid_attempt(api)
    done = api.call("POST", f"/api/attempts/{today}/reverse", json={"reason": "wrong plan"})
    assert (done.json()["kind"], done.json()["state"]) == ("reverse", "succeeded")


def test_openapi_and_docs_are_served(api: Api) -> None:
    schema = api.call("GET", "/openapi.json", role=None)
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/subscriptions",
        "/api/subscriptions/{subscription_id}",
        "/api/subscriptions/{subscription_id}/cancel",
        "/api/retries/bulk",
        "/api/invoices/{invoice_id}/write-off",
        "/api/attempts/{attempt_id}/refund",
        "/api/attempts/{attempt_id}/reverse",
        "/api/status",
        "/api/audit",
    ):
        assert path in paths
    assert api.call("GET", "/docs", role=None).status_code == 200
