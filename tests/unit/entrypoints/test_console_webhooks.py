"""The console's webhook, event and test-clock pages over ASGI: an operator adds an endpoint
(the secret shown once, on that page only), disables, enables, rotates and removes it with a
reason (audited), redelivers a delivery, browses and filters events and reads one payload,
and moves the test clock in test mode; a viewer only reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.subscription import NewSubscription
from billing.domain.webhooks import SendResult
from billing.entrypoints.http.console import ConsoleDeps, clock_page, create_console_app
from billing.services.ports import system_clock
from billing.services.read.dashboard import audit_log
from billing.settings import Settings
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher
from tests.support.world import FAST_TIMEOUTS, build_test_app
from tests.unit.entrypoints.test_console import OWNERS, TOKENS, Browser


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    got: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        self.got.append((body, headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return SendResult(status, None if status < 300 else f"HTTP {status}", 5)


@dataclass
class Queue:
    ids: list[int] = field(default_factory=list)

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        self.ids.extend(delivery_ids)


@dataclass
class Console:
    app: App
    browser: Browser
    receiver: Receiver
    queue: Queue

    def post(self, path: str, page: str, **fields: str) -> str:
        """A form posted from ``page``; the page shown afterwards (the answer or the flash)."""
        answer = self.browser.post(path, {"csrf": self.browser.csrf(page), **fields})
        if answer.status_code == 303:
            return self.browser.get(answer.headers["location"]).text
        return answer.text

    def deliver(self) -> None:
        self.app.webhook_delivery.run_pass()
        ids, self.queue.ids = self.queue.ids, []
        for delivery_id in ids:
            self.app.webhook_delivery.deliver(delivery_id)


def build(tmp_path: Path, *, test_mode: bool = False) -> Console:
    tmp_path.mkdir(exist_ok=True)
    url = f"sqlite:///{tmp_path / 'console.db'}"
    doubles = {"gateway": FakeGateway(), "dispatcher": RecordingDispatcher()}
    if test_mode:  # the clock stored in the database, as every process reads it
        settings = Settings(database_url=url, test_mode=True, **FAST_TIMEOUTS)
        app = build_app(settings, policy=DEFAULT_POLICY, **doubles)  # type: ignore[arg-type]
        app.db.upgrade()
    else:
        app = build_test_app(url, policy=DEFAULT_POLICY, clock=ManualClock(), **doubles)  # type: ignore[arg-type]
    receiver, queue = Receiver(), Queue()
    for part in (app.webhooks, app.webhook_delivery):
        part.sender, part.queue = receiver, queue
    clock = app.clock if test_mode else app.webhooks.clock
    deps = ConsoleDeps(
        db=app.db,
        app=app,
        clock=clock,
        session_clock=system_clock,  # as the admin app does: logins last in real time
        authenticate=TOKENS.get,
        owner=OWNERS.get,
    )
    browser = Browser(create_console_app(deps, session_secret="s", https_only=False))
    return Console(app, browser, receiver, queue)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    made = build(tmp_path)
    yield made
    made.browser.close()
    made.app.db.dispose()


def _secret(page: str) -> str:
    found = re.search(r'id="signing-secret">(whsec_[^<]+)<', page)
    assert found, "no secret on the page"
    return found.group(1)


def test_an_operator_manages_an_endpoint_and_every_change_is_audited(console: Console) -> None:
    console.browser.login("op-token")
    answer = console.browser.post(
        "/webhooks/new",
        {
            "csrf": console.browser.csrf("/webhooks"),
            "url": "https://saas.example/hooks",
            "events": "invoice.paid",
            "reason": "crm integration",
        },
    )
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    secret = _secret(answer.text)
    cookie = "".join(console.browser.client.cookies.values())
    assert secret not in cookie  # shown on the page, never put in the session
    listing = console.browser.get("/webhooks").text
    assert "https://saas.example/hooks" in listing and secret not in listing
    [endpoint] = console.app.webhooks.list_endpoints()
    target = f"/webhooks/{endpoint['id']}"

    page = console.post(f"{target}/disable", "/webhooks", back="/webhooks")
    assert "Not done: reason is required" in page
    page = console.post(f"{target}/disable", "/webhooks", back="/webhooks", reason="maintenance")
    assert f"Webhook endpoint {endpoint['id']} disabled" in page
    assert "disabled by alice: maintenance" in page
    page = console.post(f"{target}/enable", "/webhooks", back="/webhooks", reason="back")
    assert f"Webhook endpoint {endpoint['id']} enabled." in page

    rotated = console.browser.post(
        f"{target}/rotate", {"csrf": console.browser.csrf("/webhooks"), "reason": "leaked"}
    )
    new_secret = _secret(rotated.text)
    assert new_secret != secret and rotated.headers["cache-control"] == "no-store"
    page = console.post(f"{target}/test", "/webhooks", back="/webhooks")
    assert "answered HTTP 200" in page
    body, headers = console.receiver.got[-1]
    assert Webhook(new_secret).verify(body, headers)["type"] == "webhook.test"

    page = console.post(f"{target}/remove", "/webhooks", back="/webhooks", reason="retired")
    assert "No webhook endpoints yet." in page
    audited = [
        (e["kind"], e["actor"], e["reason"])
        for e in audit_log(console.app.db)
        if e["kind"].startswith("webhook_endpoint_")
    ]
    n = endpoint["id"]
    assert list(reversed(audited)) == [
        ("webhook_endpoint_created", "alice", f"webhook endpoint {n}: crm integration"),
        ("webhook_endpoint_disabled", "alice", f"webhook endpoint {n}: maintenance"),
        ("webhook_endpoint_enabled", "alice", f"webhook endpoint {n}: back"),
        ("webhook_endpoint_secret_rotated", "alice", f"webhook endpoint {n}: leaked"),
        ("webhook_endpoint_removed", "alice", f"webhook endpoint {n}: retired"),
    ]
    assert not any(secret in r or new_secret in r for _, _, r in audited)
    assert "webhook_endpoint_removed" in console.browser.get("/audit").text


def _subscribe(app: App, binding: str = "approve-1") -> int:
    new = NewSubscription("cust-7", binding, 49900, "0 3 1 * *", start_at=app.webhooks.clock())
    return int(app.actions.subscriptions.create(new, actor="crm", reason="x").body["id"])


def test_a_failed_delivery_is_shown_and_redelivered_with_the_same_event_id(
    console: Console,
) -> None:
    console.app.webhooks.add("https://saas.example/hooks", actor="ops", reason="crm")
    console.receiver.statuses = [500]
    sub_id = _subscribe(console.app)
    console.deliver()
    console.browser.login("op-token")
    page = console.browser.get("/webhooks?failed=1").text
    [delivery] = console.app.webhooks.deliveries(failed=True)
    row = re.search(rf'<tr data-delivery="{delivery["id"]}">(.*?)</tr>', page, re.S)
    assert row and "HTTP 500" in row.group(1) and "subscription.created" in row.group(1)
    page = console.post(
        f"/webhooks/deliveries/{delivery['id']}/redeliver",
        "/webhooks",
        back="/webhooks",
        reason="receiver fixed",
    )
    assert f"Delivery {delivery['id']} of {delivery['event_id']} enqueued again." in page
    for delivery_id in console.queue.ids:
        console.app.webhook_delivery.deliver(delivery_id)
    first, second = console.receiver.got
    assert first[1]["webhook-id"] == second[1]["webhook-id"] == delivery["event_id"]
    [done] = console.app.webhooks.deliveries()
    assert done["state"] == "succeeded"
    assert any(
        e["kind"] == "webhook_endpoint_redelivered" and e["actor"] == "alice"
        for e in audit_log(console.app.db)
    )
    assert sub_id


def test_events_are_listed_newest_first_filtered_and_one_payload_is_shown(
    console: Console,
) -> None:
    first = _subscribe(console.app, "approve-1")
    second = _subscribe(console.app, "approve-2")
    console.app.actions.pausing.pause(second, actor="ops", reason="customer asked")
    console.browser.login("view-token")
    page = console.browser.get("/events").text
    types = re.findall(r'<tr data-event="[^"]+"><td>[^<]*</td><td>([a-z_.]+)</td>', page)
    assert types == ["subscription.paused", "subscription.created", "subscription.created"]
    only = console.browser.get(f"/events?subscription={first}").text
    assert only.count("<tr data-event=") == 1
    paused = console.browser.get("/events?type=subscription.paused").text
    event_id = re.search(r'<tr data-event="([^"]+)">', paused)
    assert event_id and paused.count("<tr data-event=") == 1
    bad = console.browser.get("/events?type=invoice.payed")
    assert bad.status_code == 400 and "unknown event type" in bad.text
    shown = console.browser.get(f"/events/{event_id.group(1)}").text
    payload = re.search(r'<pre id="payload">(.*?)</pre>', shown, re.S)
    assert payload
    data = json.loads(payload.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert (data["type"], data["data"]["id"], data["data"]["status"]) == (
        "subscription.paused",
        second,
        "paused",
    )
    assert console.browser.get("/events/evt_nope").status_code == 404


def test_a_viewer_reads_but_cannot_change_endpoints(console: Console) -> None:
    added = console.app.webhooks.add("https://saas.example/hooks", actor="ops", reason="crm")
    console.browser.login("view-token")
    page = console.browser.get("/webhooks").text
    assert "https://saas.example/hooks" in page
    assert "Rotate secret" not in page and 'id="add-endpoint"' not in page
    csrf = console.browser.csrf("/webhooks")
    for path in (f"/webhooks/{added['id']}/disable", f"/webhooks/{added['id']}/rotate"):
        refused = console.browser.post(path, {"csrf": csrf, "reason": "x"})
        assert refused.status_code == 403 and "Viewers cannot act." in refused.text
    refused = console.browser.post("/webhooks/new", {"csrf": csrf, "url": "https://x.example/"})
    assert refused.status_code == 403
    assert console.app.webhooks.list_endpoints()[0]["enabled"] is True
    assert len(console.app.webhooks.list_endpoints()) == 1


def test_the_test_clock_page_moves_billing_in_test_mode_only(
    console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock_page, "SETTLE_SECONDS", 0.0)  # no workers here: don't wait
    console.browser.login("op-token")
    page = console.browser.get("/clock").text
    assert "only in test mode" in page and 'id="clock-advance"' not in page
    refused = console.post("/clock/advance", "/clock", back="/clock", by="1d", reason="x")
    assert "Not done: the test clock works only in test mode" in refused

    rehearsal = build(tmp_path / "test-mode", test_mode=True)
    try:
        rehearsal.app.test_clock.set("2027-01-01T00:00:00+00:00")
        sub_id = _subscribe(rehearsal.app)
        rehearsal.browser.login("op-token")
        page = rehearsal.post(
            "/clock/advance", "/clock", back="/clock", by="40d", reason="rehearsal"
        )
        assert "Test clock advanced to 2027-02-10T00:00:00+00:00" in page
        assert 'id="clock-now">10 Feb 2027 03:00 MSK<' in page
        invoices = rehearsal.app.read.show_subscription(sub_id)["invoices"]
        assert invoices, "the scheduler pass ran while the clock moved"
        page = rehearsal.post("/clock/set", "/clock", back="/clock", when="2026-01-01T00:00:00Z")
        assert "Not done: reason is required" in page
        page = rehearsal.post(
            "/clock/set", "/clock", back="/clock", when="2026-01-01T00:00:00Z", reason="x"
        )
        assert "Not done: the test clock only moves forward" in page
        [moved] = [e for e in audit_log(rehearsal.app.db) if e["kind"] == "test_clock_moved"]
        assert moved["actor"] == "alice" and moved["reason"].endswith(": rehearsal")
    finally:
        rehearsal.browser.close()
        rehearsal.app.db.dispose()
