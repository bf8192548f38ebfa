"""End to end: subprocesses, real PostgreSQL, real Redis, the sandbox over HTTP."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e


def _invoice_status(stack: Stack, sub_id: int) -> str | None:
    invoices = stack.show(sub_id)["invoices"]
    return invoices[0]["status"] if invoices else None


def test_a_due_subscription_is_charged_exactly_once(stack: Stack) -> None:
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    sub_id = stack.subscribe("approve-e2e-0001")
    wait_until(lambda: _invoice_status(stack, sub_id) == "paid", 40, "the invoice to be paid")
    view = stack.show(sub_id)
    assert view["status"] == "active"
    assert len(view["invoices"]) == 1
    deposited = stack.ledger("DEPOSITED")
    assert len(deposited) == 1
    assert deposited[0]["orderNumber"] == view["invoices"][0]["attempts"][0]["order_number"]


def test_insufficient_funds_walks_the_whole_schedule_to_suspension(stack: Stack) -> None:
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    sub_id = stack.subscribe("insufficient-e2e-0002")
    # The fast policy suspends after 1 + 3 declines and cancels 5 s later.
    wait_until(lambda: stack.show(sub_id)["status"] in ("suspended", "canceled"), 60, "suspension")
    view = stack.show(sub_id)
    [invoice] = view["invoices"]
    assert invoice["status"] in ("open", "uncollectible")
    assert [a["category"] for a in invoice["attempts"]] == ["soft_decline"] * 4
    assert stack.ledger("DEPOSITED") == []
    assert [e["to"] for e in view["events"] if e["kind"] == "subscription_status"][:2] == [
        "past_due",
        "suspended",
    ]
    wait_until(lambda: stack.show(sub_id)["status"] == "canceled", 30, "cancellation")
    assert len(stack.ledger()) == 4


def test_binding_not_found_leads_to_needs_payment_method(stack: Stack) -> None:
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    sub_id = stack.subscribe("notfound-e2e-0003")
    wait_until(lambda: stack.show(sub_id)["status"] == "needs_payment_method", 40, "needs pm")
    stack.cli("subscriptions", "set-binding", str(sub_id), "--binding-id", "approve-e2e-0003b")
    wait_until(lambda: _invoice_status(stack, sub_id) == "paid", 40, "payment with new card")
    assert stack.show(sub_id)["status"] == "active"


def test_an_authentication_error_leaves_every_subscription_untouched(stack: Stack) -> None:
    wrong = {"BILLING_GATEWAY_PASSWORD": "wrong-password-123"}
    stack.start("worker", "worker", env=wrong)
    stack.start("scheduler", "scheduler", env=wrong)
    ids = [stack.subscribe(f"approve-e2e-auth{n}", customer=f"c{n}") for n in range(3)]
    wait_until(lambda: stack.json("status")["charging"]["state"] == "paused", 30, "pause")
    views = [stack.show(i) for i in ids]
    assert {v["status"] for v in views} == {"active"}
    assert {inv["status"] for v in views for inv in v["invoices"]} == {"open"}
    assert stack.ledger() == []
    for name in ("worker", "scheduler", "sandbox"):
        log = (stack.logs / f"{name}.log").read_text()
        assert "wrong-password-123" not in log


def test_the_same_message_twice_after_a_timeout_charges_once(stack: Stack) -> None:
    from billing.queue.dramatiq import build_broker, declare_actors

    stack.start("worker", "worker")
    sub_id = stack.subscribe("timeout-e2e-0005")
    stack.cli("scheduler", "--once")
    wait_until(lambda: stack.ledger("DEPOSITED"), 20, "the sandbox to take the money")
    attempt_id = stack.show(sub_id)["invoices"][0]["attempts"][0]["id"]
    broker = build_broker(stack.env["BILLING_REDIS_URL"])
    actors = declare_actors(broker, lambda: None, queue_name="billing")  # type: ignore[arg-type,return-value]
    actors.charge.send(attempt_id)  # a redelivery while the first call is still timing out
    actors.charge.send(attempt_id)
    stack.start("scheduler", "scheduler")
    wait_until(lambda: _invoice_status(stack, sub_id) == "paid", 40, "the invoice to be paid")
    assert len(stack.ledger("DEPOSITED")) == 1
    assert len(stack.ledger()) == 1
    attempts = stack.show(sub_id)["invoices"][0]["attempts"]
    assert len(attempts) == 1 and attempts[0]["state"] == "paid"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--amount", "12.50", "whole number"),
        ("--amount", "0", "amount must be between"),
        ("--currency", "RUB", "3-digit"),
        ("--schedule", "0 3 32 * *", "invalid cron"),
        ("--timezone", "Europe/Atlantis", "unknown timezone"),
        ("--binding-id", "", "binding id"),
    ],
)
def test_bad_input_gives_one_clear_line_and_writes_nothing(
    stack: Stack, flag: str, value: str, message: str
) -> None:
    args = {
        "--customer-id": "c1",
        "--binding-id": "approve-x",
        "--amount": "100",
        "--schedule": "0 3 1 * *",
        "--timezone": "Europe/Moscow",
        "--currency": "643",
    }
    args[flag] = value
    flat = [item for pair in args.items() for item in pair]
    result = stack.cli("subscriptions", "create", *flat, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert stack.json("subscriptions", "list") == []
