"""Polling the public events: ``GET /api/events`` and ``billing events list`` page through
the same events, oldest first, by cursor, filtered by type; bad input is one clear error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from billing.auth_tokens import TokenConfig
from billing.bootstrap import App, build_app
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.entrypoints.cli.main import cli
from billing.entrypoints.http.admin.app import create_admin_app
from billing.settings import Settings
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"
TOKEN = "viewer-token-0123456789abcdef"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    dispatcher = RecordingDispatcher()
    built = build_app(
        Settings(database_url=url),
        gateway=FakeGateway(),
        clock=ManualClock(),
        policy=load_policy(FAST_POLICY),
        dispatcher=dispatcher,
    )
    built.db.upgrade()
    for binding in ("approve-1", "insufficient-2"):
        new = NewSubscription("cust", binding, 1000, "0 3 1 * *", start_at=built.clock())
        built.actions.subscriptions.create(new, actor="crm", reason="signup")
    built.scheduler.run_pass()
    for attempt_id in dispatcher.charges:
        built.charger.charge(attempt_id)
    yield built
    built.close()


def get(app: App, path: str) -> httpx.Response:
    asgi = create_admin_app(app, TokenConfig.parse(f"grafana:viewer:{TOKEN}"))

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})

    return asyncio.run(go())


def test_api_pages_events_oldest_first_and_filters_by_type(app: App) -> None:
    first = get(app, "/api/events?limit=3")
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["has_more"] is True
    assert [e["type"] for e in page["data"]] == [
        "subscription.created",
        "subscription.created",
        "invoice.created",
    ]
    rest = get(app, f"/api/events?after={page['next_cursor']}").json()
    types = [e["type"] for e in rest["data"]]
    assert sorted(types) == sorted(
        ["invoice.created", "invoice.paid", "invoice.payment_failed", "subscription.past_due"]
    )
    assert rest["has_more"] is False
    failed = get(app, "/api/events?type=invoice.payment_failed").json()["data"]
    assert [e["data"]["failure"]["category"] for e in failed] == ["soft_decline"]
    bad = get(app, "/api/events?type=invoice.nope")
    assert bad.status_code == 422
    assert "unknown event type 'invoice.nope'" in bad.json()["message"]
    assert get(app, "/api/events?after=x1").status_code == 422


def test_cli_lists_the_same_events_as_json_and_as_text(app: App) -> None:
    result = CliRunner().invoke(cli, ["events", "list", "--type", "invoice.paid", "--json"])
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.output)
    assert [e["type"] for e in body["data"]] == ["invoice.paid"]
    assert body["data"][0]["data"]["status"] == "paid"
    text = CliRunner().invoke(cli, ["events", "list", "--after", body["next_cursor"]])
    assert text.exit_code == 0, text.output
    assert "invoice.payment_failed" in text.output or "subscription.past_due" in text.output
    assert "invoice.paid " not in text.output
