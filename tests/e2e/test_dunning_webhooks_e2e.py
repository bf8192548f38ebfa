"""End to end over real HTTP, as the SaaS sees a dunning run: the worker and the scheduler as
subprocesses charge through the sandbox, and a receiver in this test process gets a correctly
signed event for past_due, needs_payment_method, suspended, canceled and recovered (a payment
that succeeds after failures), each with the subscription as the API shows it, in order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack, wait_until
from tests.e2e.test_webhooks_e2e import RecordingReceiver, add

pytestmark = pytest.mark.e2e

DUNNING = (
    "subscription.past_due,subscription.needs_payment_method,subscription.suspended,"
    "subscription.canceled,subscription.recovered,invoice.paid,invoice.payment_failed,"
    "invoice.uncollectible"
)


@pytest.fixture
def receiver() -> Iterator[tuple[RecordingReceiver, str]]:
    made = RecordingReceiver()
    server, url = made.serve()
    yield made, url
    server.shutdown()
    server.server_close()


def of(receiver: RecordingReceiver, sub_id: int) -> list[dict[str, Any]]:
    """One subscription's events as received, in their per-subscription order."""
    mine = [e for e in receiver.events() if e["subscription_id"] == sub_id]
    return sorted({e["id"]: e for e in mine}.values(), key=lambda e: e["sequence"])


def types(receiver: RecordingReceiver, sub_id: int) -> list[str]:
    return [e["type"] for e in of(receiver, sub_id)]


def test_the_saas_hears_every_dunning_turn_signed_and_in_order(
    stack: Stack, receiver: tuple[RecordingReceiver, str]
) -> None:
    got, url = receiver
    secret = add(stack, url, DUNNING)["secret"]
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    recovering = stack.subscribe("recover2-e2e-dun-1", customer="cust-rec")
    exhausted = stack.subscribe("insufficient-e2e-dun-2", customer="cust-sus")
    card_gone = stack.subscribe("expired-e2e-dun-3", customer="cust-npm")

    wait_until(
        lambda: "subscription.recovered" in types(got, recovering),
        90,
        "the recovering subscription's events",
    )
    wait_until(
        lambda: "subscription.canceled" in types(got, exhausted),
        90,
        "the exhausted subscription to be suspended, then canceled",
    )
    wait_until(
        lambda: "subscription.needs_payment_method" in types(got, card_gone),
        60,
        "needs_payment_method",
    )

    # Every delivery verifies with the standardwebhooks library; the id is the event's.
    verifier = Webhook(secret)
    for headers, body in list(got.got):
        event = verifier.verify(body, headers)
        assert event["id"] == headers["webhook-id"]
        assert event["livemode"] is True

    # Recovered: two failures (past_due after the first), then paid, then recovered.
    recovered = of(got, recovering)
    assert [e["type"] for e in recovered] == [
        "invoice.payment_failed",
        "subscription.past_due",
        "invoice.payment_failed",
        "invoice.paid",
        "subscription.recovered",
    ]
    failures = [e["data"] for e in recovered if e["type"] == "invoice.payment_failed"]
    assert [f["failure"]["attempt_number"] for f in failures] == [1, 2]
    assert all(f["failure"]["category"] == "soft_decline" for f in failures)
    assert all(f["failure"]["next_retry_at"] for f in failures)
    past_due = recovered[1]["data"]
    assert (past_due["object"], past_due["id"], past_due["status"]) == (
        "subscription",
        recovering,
        "past_due",
    )
    assert past_due["previous_status"] == "active"
    back = recovered[-1]["data"]
    assert (back["status"], back["previous_status"]) == ("active", "past_due")
    paid = recovered[3]["data"]
    assert (paid["object"], paid["status"], paid["amount"]) == ("invoice", "paid", 49900)
    seqs = [e["sequence"] for e in recovered]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    # Exhausted: past_due, then suspended when retries ran out, then canceled.
    turns = [t for t in types(got, exhausted) if t.startswith("subscription.")]
    assert turns == ["subscription.past_due", "subscription.suspended", "subscription.canceled"]
    suspended = next(e for e in of(got, exhausted) if e["type"] == "subscription.suspended")
    assert (suspended["data"]["status"], suspended["data"]["previous_status"]) == (
        "suspended",
        "past_due",
    )
    last_failure = [e for e in of(got, exhausted) if e["type"] == "invoice.payment_failed"][-1]
    assert last_failure["data"]["failure"]["next_retry_at"] is None  # no retry left

    # An expired card: no retry can help, the SaaS must ask for a new card.
    npm = next(e for e in of(got, card_gone) if e["type"] == "subscription.needs_payment_method")
    assert (npm["data"]["id"], npm["data"]["status"]) == (card_gone, "needs_payment_method")
    failure = next(e for e in of(got, card_gone) if e["type"] == "invoice.payment_failed")
    assert failure["data"]["failure"]["category"] == "hard_decline"
    # Bindings are shown masked: a full bindingId never leaves in a webhook.
    for _, body in list(got.got):
        for binding in ("recover2-e2e-dun-1", "insufficient-e2e-dun-2", "expired-e2e-dun-3"):
            assert binding.encode() not in body
