"""End to end: the operator gives money back with `billing refund` / `billing reverse`, as
subprocesses against real PostgreSQL and Redis, and the sandbox "bank" (refund.do and
reverse.do over HTTP) shows what it did."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

PRICE = 49900


def _order(stack: Stack, binding: str) -> dict[str, Any]:
    [order] = [o for o in stack.ledger() if o["bindingId"] == binding]
    return order


def _paid_attempt(stack: Stack, sub_id: int) -> int:
    def paid() -> bool:
        return bool(stack.show(sub_id)["invoices"][0]["status"] == "paid")

    wait_until(paid, 40, f"subscription {sub_id} to be paid")
    [attempt] = stack.show(sub_id)["invoices"][0]["attempts"]
    assert attempt["state"] == "paid"
    return int(attempt["id"])


def _one_line_error(result: Any, starts: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_partial_refund_once_per_key_then_the_rest_and_a_reversal(stack: Stack) -> None:
    stack.start("worker", "worker")
    refunded_binding, reversed_binding = "approve-e2e-refund-1", "approve-e2e-reverse-1"
    refunded_sub = stack.subscribe(refunded_binding, customer="cust-refund", amount=PRICE)
    reversed_sub = stack.subscribe(reversed_binding, customer="cust-reverse", amount=PRICE)
    stack.cli("scheduler", "--once")
    attempt_id = _paid_attempt(stack, refunded_sub)
    other_id = _paid_attempt(stack, reversed_sub)
    assert {o["state"] for o in stack.ledger()} == {"DEPOSITED"}

    # The same command twice with one key: one refund at the bank, the same answer twice.
    partial = (
        "refund",
        str(attempt_id),
        "--amount",
        "10000",
        "--reason",
        "customer complained about the outage",
        "--idempotency-key",
        "e2e-refund-click-1",
    )
    first, second = stack.json(*partial), stack.json(*partial)
    assert (first["state"], first["amount"], first["refundable_left"]) == (
        "succeeded",
        10000,
        PRICE - 10000,
    )
    assert second == first
    order = _order(stack, refunded_binding)
    assert (order["state"], order["orderStatus"]) == ("REFUNDED", 4)
    assert (order["depositedAmount"], order["refundedAmount"]) == (PRICE, 10000)
    assert [(r["externalRefundId"], r["amount"]) for r in order["refunds"]] == [
        (first["external_refund_id"], 10000)
    ]

    # More than is left is refused before anything is sent.
    too_much = stack.cli(
        "refund", str(attempt_id), "--amount", str(PRICE), "--reason", "x", check=False
    )
    _one_line_error(too_much, f"cannot refund {PRICE}: only {PRICE - 10000} ")
    assert _order(stack, refunded_binding)["refundedAmount"] == 10000

    # The rest (no --amount): the order is refunded in full.
    rest = stack.json("refund", str(attempt_id), "--reason", "closing the account")
    assert (rest["state"], rest["amount"], rest["refundable_left"]) == (
        "succeeded",
        PRICE - 10000,
        0,
    )
    order = _order(stack, refunded_binding)
    assert (order["state"], order["refundedAmount"]) == ("REFUNDED", PRICE)
    assert [r["amount"] for r in order["refunds"]] == [10000, PRICE - 10000]
    beyond = stack.cli("refund", str(attempt_id), "--amount", "1", "--reason", "x", check=False)
    _one_line_error(beyond, f"attempt {attempt_id} is already refunded in full")
    invoice_id = stack.show(refunded_sub)["invoices"][0]["id"]
    shown = stack.json("invoices", "show", str(invoice_id))
    assert [(r["kind"], r["state"], r["amount"]) for r in shown["refunds"]] == [
        ("refund", "succeeded", 10000),
        ("refund", "succeeded", PRICE - 10000),
    ]

    # The other payment is cancelled the same day: REVERSED at the bank, only once.
    reversed_ = stack.json("reverse", str(other_id), "--reason", "charged by mistake")
    assert (reversed_["kind"], reversed_["state"], reversed_["amount"]) == (
        "reverse",
        "succeeded",
        PRICE,
    )
    order = _order(stack, reversed_binding)
    assert (order["state"], order["orderStatus"]) == ("REVERSED", 3)
    assert (order["depositedAmount"], order["refundedAmount"]) == (0, 0)
    again = stack.cli("reverse", str(other_id), "--reason", "x", check=False)
    _one_line_error(again, f"attempt {other_id} was already reversed")
    refund_after = stack.cli("refund", str(other_id), "--reason", "x", check=False)
    _one_line_error(refund_after, f"attempt {other_id} was already reversed")

    # A refunded order cannot be reversed (refused by billing before the bank sees it).
    late = stack.cli("reverse", str(attempt_id), "--reason", "x", check=False)
    _one_line_error(late, f"attempt {attempt_id} already has refunds")
    assert sorted(o["state"] for o in stack.ledger()) == ["REFUNDED", "REVERSED"]
