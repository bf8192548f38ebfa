"""End to end over real HTTP: the worker and the scheduler as subprocesses deliver signed
webhooks to small receivers in this test process, while slow and dead receivers leave
charging as fast as ever."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack, free_port, wait_until
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e


@dataclass
class RecordingReceiver(Receiver):
    """Records each POST; answers 500 to the first try of each event when ``flaky``,
    and sleeps ``delay`` seconds first when slow."""

    flaky: bool = False
    delay: float = 0.0
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            first = all(h["webhook-id"] != headers["webhook-id"] for h, _ in self.got)
            self.got.append((headers, body))
        if self.delay:
            time.sleep(self.delay)
        return 500 if self.flaky and first else 200

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.got]


@pytest.fixture
def receivers() -> Iterator[dict[str, tuple[RecordingReceiver, str]]]:
    made = {
        "good": RecordingReceiver(),
        "flaky": RecordingReceiver(flaky=True),
        "slow": RecordingReceiver(delay=9),
    }
    with ExitStack() as serving:
        yield {name: (r, serving.enter_context(r.serving())) for name, r in made.items()}


def add(stack: Stack, url: str, events: str | None = None) -> dict[str, Any]:
    args = ["webhooks", "add", "--url", url, *(["--events", events] if events else [])]
    return dict(stack.json(*args))


def test_signed_events_arrive_and_slow_or_dead_receivers_do_not_slow_charging(
    stack: Stack, receivers: dict[str, tuple[RecordingReceiver, str]]
) -> None:
    good, good_url = receivers["good"]
    flaky, flaky_url = receivers["flaky"]
    slow, slow_url = receivers["slow"]
    secret = add(stack, good_url, "invoice.paid,invoice.payment_failed")["secret"]
    add(stack, flaky_url, "subscription.created")
    add(stack, slow_url, "subscription.created")
    add(stack, f"http://127.0.0.1:{free_port()}/down")  # nobody listens there
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    started = time.monotonic()
    paid = stack.subscribe("approve-e2e-hook-1")
    declined = stack.subscribe("insufficient-e2e-hook-2")

    def invoice_paid() -> bool:
        invoices = stack.show(paid)["invoices"]
        return bool(invoices) and invoices[0]["status"] == "paid"

    wait_until(invoice_paid, 40, "the invoice to be paid")
    assert time.monotonic() - started < 20, "charging waited for webhook receivers"
    assert slow.got, "the slow receiver was being called meanwhile"

    def types() -> set[str]:
        return {e["type"] for e in good.events()}

    def first_failure_delivered() -> bool:
        return any(
            e["type"] == "invoice.payment_failed" and e["data"]["failure"]["attempt_number"] == 1
            for e in good.events()
        )

    wait_until(lambda: "invoice.paid" in types() and first_failure_delivered(), 60, "webhooks")
    verifier = Webhook(secret)
    for headers, body in list(good.got):
        event = verifier.verify(body, headers)
        assert event["id"] == headers["webhook-id"]
        assert event["livemode"] is True
    by_type = {e["type"]: e for e in good.events()}
    assert by_type["invoice.paid"]["data"]["subscription_id"] == paid
    failed = [e["data"] for e in good.events() if e["type"] == "invoice.payment_failed"]
    assert {f["subscription_id"] for f in failed} == {declined}
    assert {f["failure"]["category"] for f in failed} == {"soft_decline"}
    [first] = [f for f in failed if f["failure"]["attempt_number"] == 1]
    assert first["failure"]["next_retry_at"] is not None  # dunning tries again

    # 500 then 200: the same event twice, with the same id and body.
    wait_until(lambda: len(flaky.got) >= 4, 40, "the flaky receiver's retries")
    ids = [h["webhook-id"] for h, _ in flaky.got]
    assert sorted(set(ids)) == sorted(set(ids[:2]) | set(ids[2:]))
    for event_id in set(ids):
        bodies = [body for h, body in flaky.got if h["webhook-id"] == event_id]
        assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert {e["type"] for e in flaky.events()} == {"subscription.created"}

    down = stack.json("webhooks", "deliveries", "--failed")
    assert any("cannot reach" in (d["last_error"] or "") for d in down)
