"""End to end over real HTTP: a two-phase merchant (held → captured → paid, a capture that
times out, a capture refused) and a stuck order declined with decline.do, then retried with
a new orderNumber. Subprocesses, real PostgreSQL and Redis, the sandbox gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, Stack, wait_until

pytestmark = pytest.mark.e2e


def _two_phase_sandbox(stack: Stack) -> None:
    """Restart the stack's sandbox on the same port as a two-phase merchant's gateway."""
    port = stack.sandbox_url.rsplit(":", 1)[1]
    stack.stop("sandbox")
    stack.start("sandbox", "sandbox", "--port", port, "--timeout-delay", "2", "--two-phase")
    wait_until(lambda: _healthy(stack), 20, "the two-phase sandbox to answer")


def _healthy(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.sandbox_url}/sandbox/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _calls(stack: Stack, method: str) -> int:
    answer = httpx.get(f"{stack.sandbox_url}/sandbox/requests", timeout=5).json()
    return sum(1 for _, name in answer["requests"] if name == method)


def _attempts(stack: Stack, sub_id: int) -> list[dict[str, Any]]:
    invoices = stack.show(sub_id)["invoices"]
    return list(invoices[0]["attempts"]) if invoices else []


def _invoice_status(stack: Stack, sub_id: int) -> str | None:
    invoices = stack.show(sub_id)["invoices"]
    return invoices[0]["status"] if invoices else None


def _run(stack: Stack, **env: str) -> None:
    stack.start("worker", "worker", env=env)
    stack.start("scheduler", "scheduler", env=env)


TWO_PHASE = {"BILLING_GATEWAY_TWO_PHASE": "true"}


def test_a_held_charge_is_captured_once_and_paid(stack: Stack) -> None:
    _two_phase_sandbox(stack)
    _run(stack, **TWO_PHASE)
    sub_id = stack.subscribe("approve-e2e-2p01")
    wait_until(lambda: _invoice_status(stack, sub_id) == "paid", 40, "the capture to be paid")
    [attempt] = _attempts(stack, sub_id)
    [order] = stack.ledger()
    assert order["state"] == "DEPOSITED" and order["orderNumber"] == attempt["order_number"]
    assert _calls(stack, "deposit.do") == 1
    kinds = [e["kind"] for e in stack.show(sub_id)["events"]]
    assert "capture_sent" in kinds and "capture_answered" in kinds


def test_a_capture_that_times_out_is_settled_by_status_not_sent_again(stack: Stack) -> None:
    _two_phase_sandbox(stack)
    _run(stack, **TWO_PHASE)
    sub_id = stack.subscribe("holdtimeout-e2e-2p02")  # deposit.do answers after 2 s; we wait 1 s
    wait_until(lambda: _invoice_status(stack, sub_id) == "paid", 40, "the capture to be paid")
    assert [o["state"] for o in stack.ledger()] == ["DEPOSITED"]
    assert _calls(stack, "deposit.do") == 1
    assert [a["state"] for a in _attempts(stack, sub_id)] == ["paid"]


def test_a_refused_capture_is_released_and_nobody_is_charged(stack: Stack) -> None:
    _two_phase_sandbox(stack)
    _run(stack, **TWO_PHASE)
    sub_id = stack.subscribe("holdrefuse-e2e-2p03")  # the first deposit.do of each order fails
    wait_until(lambda: stack.ledger("REVERSED"), 40, "the hold to be released")
    first = wait_until(
        lambda: next((a for a in _attempts(stack, sub_id) if a["state"] == "failed"), None),
        40,
        "the attempt to fail",
    )
    assert first["reason"] == "capture_refused"
    assert stack.ledger("DEPOSITED") == []
    assert stack.show(sub_id)["status"] == "active"  # not the customer's fault
    assert _calls(stack, "reverse.do") >= 1


def test_a_refused_capture_waits_for_an_operator_who_captures_it(stack: Stack) -> None:
    _two_phase_sandbox(stack)
    _run(stack, BILLING_GATEWAY_CAPTURE_FAILED="operator", **TWO_PHASE)
    sub_id = stack.subscribe("holdrefuse-e2e-2p04")
    attempt = wait_until(
        lambda: next((a for a in _attempts(stack, sub_id) if a["state"] == "needs_operator"), 0),
        40,
        "the attempt to wait for an operator",
    )
    assert [o["state"] for o in stack.ledger()] == ["APPROVED"]  # the funds are still held
    missing = stack.cli("capture", str(attempt["id"]), check=False)
    assert missing.returncode != 0 and "--reason" in missing.stderr
    done = stack.json("capture", str(attempt["id"]), "--reason", "customer confirmed by phone")
    assert done["result"] == "paid"
    assert _invoice_status(stack, sub_id) == "paid"
    assert [o["state"] for o in stack.ledger()] == ["DEPOSITED"]
    assert _calls(stack, "deposit.do") == 2  # the refused one, and the operator's
    actors = {
        e.get("actor") for e in stack.show(sub_id)["events"] if e["kind"] == "capture_requested"
    }
    assert any(str(a).startswith("cli:") for a in actors)


def test_a_stuck_order_is_declined_and_retried_with_a_new_order_number(
    stack: Stack, tmp_path: Path
) -> None:
    policy = tmp_path / "dunning-stuck.toml"
    fast = (ROOT / "config" / "dunning-fast.toml").read_text()
    policy.write_text(fast.replace('decline_after = ""', 'decline_after = "3s"'))
    _run(stack, BILLING_DUNNING_POLICY=str(policy))
    sub_id = stack.subscribe("stuck-e2e-0201")  # its first order stays CREATED for good
    wait_until(lambda: _invoice_status(stack, sub_id) == "paid", 60, "the retry to be paid")
    attempts = _attempts(stack, sub_id)
    assert [a["state"] for a in attempts] == ["failed", "paid"]
    assert attempts[0]["reason"] == "stuck_order_declined"
    assert attempts[0]["order_number"] != attempts[1]["order_number"]
    orders = {o["orderNumber"]: o for o in stack.ledger()}
    assert orders[attempts[0]["order_number"]]["state"] == "DECLINED"
    assert orders[attempts[0]["order_number"]]["actionCode"] == 4005
    assert [o["orderNumber"] for o in orders.values() if o["state"] == "DEPOSITED"] == [
        attempts[1]["order_number"]
    ]
    assert _calls(stack, "decline.do") == 1
    assert stack.show(sub_id)["status"] == "active"
