"""Webhook delivery as a receiver sees it: signed so that the ``standardwebhooks`` library
verifies it, the same event id on every try, retried with backoff after a 500 or a dead
receiver, given up after about three days, the endpoint disabled after days of failures,
redelivered by hand, filtered by type."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.domain.webhooks import RETRY_DELAYS, SendResult
from billing.errors import ConfigurationError, ConflictError, ValidationError
from billing.services.audit import record_event
from billing.services.read.dashboard import audit_log
from billing.services.read.events import list_events
from billing.settings import load_settings
from billing.storage.tables import Subscription
from tests.support.world import ServiceWorld

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"

#: Who changes endpoints in these tests (every change is audited).
BY_OPS = {"actor": "ops", "reason": "test setup"}


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (None = down), then 200."""

    script: list[int | None] = field(default_factory=list)
    got: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        self.got.append((url, body, headers))
        status = self.script.pop(0) if self.script else 200
        if status is None:
            return SendResult(None, "ConnectError: cannot reach the endpoint", 3)
        return SendResult(status, None if status < 300 else f"HTTP {status}", 7)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, _ in self.got]


@dataclass
class Queue:
    ids: list[int] = field(default_factory=list)

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        self.ids.extend(delivery_ids)


@dataclass
class Hooks:
    world: ServiceWorld
    receiver: Receiver
    queue: Queue

    def subscribe(self, binding: str) -> int:
        w = self.world
        new = NewSubscription("cust-1", binding, 49900, "0 3 1 * *", start_at=w.clock())
        return int(w.app.actions.subscriptions.create(new, actor="crm", reason="x").body["id"])

    def run(self) -> None:
        """A webhook pass, then what it enqueued, like a worker on billing_webhooks."""
        self.world.app.webhook_delivery.run_pass()
        ids, self.queue.ids = self.queue.ids, []
        for delivery_id in ids:
            self.world.app.webhook_delivery.deliver(delivery_id)


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[Hooks]:
    receiver, queue = Receiver(), Queue()
    world = ServiceWorld.build(
        f"sqlite:///{tmp_path / 'billing.db'}",
        policy=load_policy(FAST_POLICY),
        stale_sending_after=30,
    )
    world.app.webhook_delivery.sender = receiver
    world.app.webhook_delivery.queue = queue
    world.app.webhooks.sender = receiver
    world.app.webhooks.queue = queue
    yield Hooks(world, receiver, queue)
    world.db.dispose()


def test_paid_and_payment_failed_arrive_signed_for_standardwebhooks(hooks: Hooks) -> None:
    endpoint = hooks.world.app.webhooks.add(
        "https://saas.example/hooks", "invoice.paid,invoice.payment_failed", **BY_OPS
    )
    assert endpoint["secret"].startswith("whsec_")
    assert "secret" not in hooks.world.app.webhooks.list_endpoints()[0]
    hooks.subscribe("approve-1")
    hooks.subscribe("insufficient-2")
    hooks.world.tick()
    hooks.run()
    verifier = Webhook(endpoint["secret"])
    types = []
    for url, body, headers in hooks.receiver.got:
        assert url == "https://saas.example/hooks"
        payload = verifier.verify(body, headers)
        assert payload["id"] == headers["webhook-id"]
        types.append(payload["type"])
    assert sorted(types) == ["invoice.paid", "invoice.payment_failed"]
    forged = dict(hooks.receiver.got[0][2]) | {"webhook-id": "evt_other"}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verifier.verify(hooks.receiver.got[0][1], forged)


def test_a_500_then_200_delivers_the_same_event_twice_with_the_same_id(hooks: Hooks) -> None:
    hooks.world.app.webhooks.add("https://saas.example/hooks", "subscription.created", **BY_OPS)
    hooks.receiver.script = [500]
    hooks.subscribe("approve-1")
    hooks.run()
    [delivery] = hooks.world.app.webhooks.deliveries(failed=True)
    assert (delivery["state"], delivery["tries"], delivery["last_status"]) == ("pending", 1, 500)
    hooks.run()  # not due yet: nothing sent
    assert len(hooks.receiver.got) == 1
    hooks.world.clock.advance(seconds=RETRY_DELAYS[0].total_seconds())
    hooks.run()
    first, second = hooks.receiver.got
    assert first[2]["webhook-id"] == second[2]["webhook-id"]
    assert first[1] == second[1]
    [done] = hooks.world.app.webhooks.deliveries()
    assert (done["state"], done["tries"]) == ("succeeded", 2)
    tries = hooks.world.app.webhooks.tries(done["id"])
    assert [t["status"] for t in tries] == [500, 200]
    assert hooks.world.app.webhooks.list_endpoints()[0]["failing_since"] is None


def test_a_dead_receiver_is_retried_for_about_three_days_then_given_up_and_disabled(
    hooks: Hooks,
) -> None:
    hooks.world.app.webhooks.add("https://down.example/hooks", "subscription.created", **BY_OPS)
    hooks.receiver.script = [None] * 100
    hooks.subscribe("approve-1")
    hooks.run()
    for delay in RETRY_DELAYS:
        hooks.world.clock.advance(seconds=delay.total_seconds())
        hooks.run()
    assert len(hooks.receiver.got) == len(RETRY_DELAYS) + 1
    assert timedelta(days=3) <= sum(RETRY_DELAYS, timedelta()) <= timedelta(days=4)
    [delivery] = hooks.world.app.webhooks.deliveries(failed=True)
    assert delivery["state"] == "failed"
    assert "cannot reach" in delivery["last_error"]
    [endpoint] = hooks.world.app.webhooks.list_endpoints()
    assert endpoint["enabled"] is True  # failing for ~3 days: not yet
    hooks.subscribe("approve-2")
    hooks.world.clock.advance(days=2)
    hooks.run()
    [endpoint] = hooks.world.app.webhooks.list_endpoints()
    assert endpoint["status"] == "disabled"
    assert "no successful delivery since" in endpoint["disabled_reason"]
    sent = len(hooks.receiver.got)
    hooks.subscribe("approve-3")
    hooks.world.clock.advance(days=1)
    hooks.run()
    assert len(hooks.receiver.got) == sent  # a disabled endpoint gets nothing
    with pytest.raises(ValidationError, match="disabled"):
        hooks.world.app.webhooks.redeliver(delivery["id"], **BY_OPS)
    hooks.world.app.webhooks.set_enabled(endpoint["id"], True, **BY_OPS)
    audited = [(e["kind"], e["actor"]) for e in audit_log(hooks.world.db) if "webhook" in e["kind"]]
    assert audited == [
        ("webhook_endpoint_enabled", "ops"),
        ("webhook_endpoint_disabled", "system"),  # the machine disabled it, and said why
        ("webhook_endpoint_created", "ops"),
    ]
    hooks.receiver.script = []
    again = hooks.world.app.webhooks.redeliver(delivery["id"], **BY_OPS)
    assert again["state"] == "pending"
    for delivery_id in hooks.queue.ids:
        hooks.world.app.webhook_delivery.deliver(delivery_id)
    assert hooks.receiver.got[-1][2]["webhook-id"] == delivery["event_id"]


def test_only_the_types_an_endpoint_asked_for(hooks: Hooks) -> None:
    hooks.world.app.webhooks.add("https://a.example/", "invoice.paid", **BY_OPS)
    hooks.world.app.webhooks.add("https://b.example/", **BY_OPS)
    hooks.subscribe("approve-1")
    hooks.world.tick()
    hooks.run()
    by_url: dict[str, list[str]] = {}
    for url, body, _ in hooks.receiver.got:
        by_url.setdefault(url, []).append(json.loads(body)["type"])
    assert by_url["https://a.example/"] == ["invoice.paid"]
    assert sorted(by_url["https://b.example/"]) == sorted(
        ["subscription.created", "invoice.created", "invoice.paid"]
    )


def test_bad_endpoint_input_is_one_clear_error_and_changes_nothing(hooks: Hooks) -> None:
    with pytest.raises(ValidationError, match="invalid webhook URL"):
        hooks.world.app.webhooks.add("ftp://x", **BY_OPS)
    with pytest.raises(ValidationError, match="unknown event type"):
        hooks.world.app.webhooks.add("https://a.example/", "invoice.payed", **BY_OPS)
    assert hooks.world.app.webhooks.list_endpoints() == []


def test_test_sends_a_signed_ping_and_says_what_came_back(hooks: Hooks) -> None:
    endpoint = hooks.world.app.webhooks.add("https://a.example/", **BY_OPS)
    hooks.receiver.script = [503]
    result = hooks.world.app.webhooks.test(endpoint["id"])
    assert (result["ok"], result["status"]) == (False, 503)
    _, body, headers = hooks.receiver.got[0]
    assert Webhook(endpoint["secret"]).verify(body, headers)["type"] == "webhook.test"


def test_a_rolled_back_change_sends_nothing(hooks: Hooks) -> None:
    hooks.world.app.webhooks.add("https://saas.example/hooks", **BY_OPS)
    sub_id = hooks.subscribe("approve-1")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        hooks.world.app.actions.pausing.pause(sub_id, actor="ops", reason="x")
        with hooks.world.db.transaction() as session:
            sub = session.get_one(Subscription, sub_id)
            record_event(
                session,
                hooks.world.clock(),
                "subscription_status",
                "canceled by a bug",
                subscription_id=sub_id,
                from_state=sub.status,
                to_state="canceled",
            )
            sub.status = "canceled"
            raise Boom
    hooks.run()
    assert [e["type"] for e in hooks.receiver.events()] == [
        "subscription.created",
        "subscription.paused",
    ]


SETTINGS_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_an_endpoint_from_the_settings_gets_every_event(tmp_path: Path) -> None:
    receiver, queue = Receiver(), Queue()
    world = ServiceWorld.build(
        f"sqlite:///{tmp_path / 'billing.db'}",
        policy=load_policy(FAST_POLICY),
        webhook_url="https://saas.example/from-settings",
        webhook_secret=SETTINGS_SECRET,
    )
    try:
        world.app.webhook_delivery.sender = receiver
        world.app.webhook_delivery.queue = queue
        hooks = Hooks(world, receiver, queue)
        hooks.subscribe("approve-1")
        hooks.run()
        hooks.run()  # the endpoint is made once
        [endpoint] = world.app.webhooks.list_endpoints()
        assert endpoint["url"] == "https://saas.example/from-settings"
        [(url, body, headers)] = receiver.got
        assert url == endpoint["url"]
        assert Webhook(SETTINGS_SECRET).verify(body, headers)["type"] == "subscription.created"
    finally:
        world.db.dispose()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"webhook_url": "https://a.example/"}, "set together"),
        ({"webhook_url": "https://a.example/", "webhook_secret": "plain"}, "starts with 'whsec_'"),
        ({"webhook_url": "https://a.example/", "webhook_secret": "whsec_AAAA"}, "24 random"),
    ],
)
def test_webhook_settings_are_checked_without_echoing_the_secret(
    settings: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(f"BILLING_{name.upper()}", value)
    with pytest.raises(ConfigurationError, match=message) as error:
        load_settings()
    assert "plain" not in str(error.value) and "AAAA" not in str(error.value)


def test_every_endpoint_change_needs_a_reason_and_is_audited_without_the_secret(
    hooks: Hooks,
) -> None:
    hooks_api = hooks.world.app.webhooks
    endpoint = hooks_api.add("https://saas.example/hooks", actor="alice", reason="crm hooks")
    with pytest.raises(ValidationError, match="reason is required"):
        hooks_api.set_enabled(endpoint["id"], False, actor="alice", reason=" ")
    assert hooks_api.list_endpoints()[0]["enabled"] is True  # refused: nothing changed
    hooks_api.set_enabled(endpoint["id"], False, actor="alice", reason="maintenance")
    with pytest.raises(ConflictError, match="already disabled"):
        hooks_api.set_enabled(endpoint["id"], False, actor="alice", reason="maintenance")
    hooks_api.set_enabled(endpoint["id"], True, actor="bob", reason="back up")
    rotated = hooks_api.rotate_secret(endpoint["id"], actor="bob", reason="leaked in a ticket")
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    assert "secret" not in hooks_api.list_endpoints()[0]
    hooks.receiver.script = [200]
    hooks_api.test(endpoint["id"])
    _, body, headers = hooks.receiver.got[-1]
    assert Webhook(rotated["secret"]).verify(body, headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(body, headers)  # the old secret signs no more
    hooks_api.remove(endpoint["id"], actor="carol", reason="receiver retired")
    rows = audit_log(hooks.world.db)
    assert [(e["kind"], e["actor"], e["reason"]) for e in reversed(rows)] == [
        ("webhook_endpoint_created", "alice", f"webhook endpoint {endpoint['id']}: crm hooks"),
        ("webhook_endpoint_disabled", "alice", f"webhook endpoint {endpoint['id']}: maintenance"),
        ("webhook_endpoint_enabled", "bob", f"webhook endpoint {endpoint['id']}: back up"),
        (
            "webhook_endpoint_secret_rotated",
            "bob",
            f"webhook endpoint {endpoint['id']}: leaked in a ticket",
        ),
        (
            "webhook_endpoint_removed",
            "carol",
            f"webhook endpoint {endpoint['id']}: receiver retired",
        ),
    ]
    assert list_events(hooks.world.db).events == []  # operators' changes are not public events
