"""The outbox survives a SIGKILL: the worker is killed after a charge's state change committed
(its events are in the outbox) but while the webhook is still on its way; after a restart
every event arrives, with the same id and body, and is answered 2xx exactly once per id.
Nothing is lost, nothing is sent twice as a success, and the money is right."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack, wait_until
from tests.e2e.test_webhooks_e2e import add
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e


@dataclass
class HangingReceiver(Receiver):
    """While ``hang`` is set, holds every request without answering (the sender is stuck in
    its HTTP call); otherwise answers 200 and records the event as accepted."""

    hang: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int | None:
        with self.lock:
            self.seen.append((headers, body))
            hanging = self.hang.is_set()
        if hanging:
            self.release.wait(30)
            return None  # never answered: the sender was killed meanwhile
        with self.lock:
            self.accepted.append(headers["webhook-id"])
        return 200


@pytest.fixture
def receiver() -> Iterator[tuple[HangingReceiver, str]]:
    made = HangingReceiver()
    with made.serving() as url:
        try:
            yield made, url
        finally:
            made.release.set()


def test_events_committed_before_a_sigkill_are_delivered_once_after_the_restart(
    stack: Stack, receiver: tuple[HangingReceiver, str]
) -> None:
    got, url = receiver
    secret = add(stack, url, "invoice.paid,subscription.created,invoice.created")["secret"]
    got.hang.set()
    # Lost messages come back after 10 s (the e2e setting), never while a try may still run.
    stack.start("scheduler", "scheduler")
    stack.start("worker", "worker")
    subs = [stack.subscribe(f"approve-e2e-kill-{n}", customer=f"cust-k{n}") for n in range(3)]

    wait_until(lambda: got.seen, 60, "a webhook in flight")
    # Killed mid-delivery (the try is never recorded), and maybe mid-charge too.
    stack.stop("worker", signal.SIGKILL)
    in_flight = {h["webhook-id"] for h, _ in got.seen}
    got.hang.clear()
    got.release.set()
    stack.start("worker", "worker")

    def all_paid() -> bool:
        return all(stack.show(s)["invoices"][0]["status"] == "paid" for s in subs)

    wait_until(all_paid, 60, "every invoice paid after the restart")
    events = stack.json("events", "list", "--limit", "100")["data"]
    wanted = {
        e["id"]: e
        for e in events
        if e["type"] in ("invoice.paid", "subscription.created", "invoice.created")
    }
    assert {e["type"] for e in wanted.values()} == {
        "invoice.paid",
        "subscription.created",
        "invoice.created",
    }
    assert len([e for e in wanted.values() if e["type"] == "invoice.paid"]) == len(subs)

    def every_event_accepted() -> bool:
        with got.lock:
            return set(got.accepted) >= set(wanted)

    wait_until(every_event_accepted, 90, "every event to be delivered after the restart")
    wait_until(
        lambda: all(d["state"] == "succeeded" for d in stack.json("webhooks", "deliveries")),
        30,
        "every delivery recorded as succeeded",
    )
    with got.lock:
        accepted, seen = list(got.accepted), list(got.seen)
    assert sorted(accepted) == sorted(set(accepted)), "an event was accepted twice"
    assert set(accepted) == set(wanted)
    assert in_flight <= set(accepted), "the event in flight at the kill was lost"
    verifier = Webhook(secret)
    bodies: dict[str, bytes] = {}
    for headers, body in seen:
        event = verifier.verify(body, headers)
        assert event["id"] == headers["webhook-id"]
        assert bodies.setdefault(event["id"], body) == body  # the same body on every try
        assert json.loads(body) == wanted[event["id"]]
    # The money is right: one charge per invoice at the sandbox.
    assert len(stack.ledger("DEPOSITED")) == len(subs)
