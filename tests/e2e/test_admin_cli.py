"""End to end: the operator commands of the CLI and `billing admin serve` as subprocesses,
against real PostgreSQL and Redis and the sandbox gateway over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "e2e-operator-token-0123456789abcdef"


def _status(stack: Stack, sub_id: int) -> str:
    return str(stack.show(sub_id)["status"])


def test_pause_resume_update_and_cancel_at_period_end(stack: Stack) -> None:
    stack.start("worker", "worker")
    sub_id = stack.subscribe("approve-e2e-admin-1")
    stack.cli("scheduler", "--once")
    wait_until(
        lambda: (
            stack.json("invoices", "list", "--subscription-id", str(sub_id))[0]["status"] == "paid"
        ),
        40,
        "the invoice to be paid",
    )
    paused = stack.json("subscriptions", "pause", str(sub_id), "--reason", "holiday")
    assert (paused["status"], paused["paused_from"]) == ("paused", "active")
    resumed = stack.json("subscriptions", "resume", str(sub_id), "--reason", "back")
    assert resumed["status"] == "active"
    updated = stack.json(
        "subscriptions", "update", str(sub_id), "--amount", "59900", "--reason", "upgrade"
    )
    assert updated["amount"] == 59900
    ending = stack.json(
        "subscriptions", "cancel", str(sub_id), "--at-period-end", "--reason", "leaving"
    )
    assert ending["ends_at"] is not None and ending["next_charge_at"] is None
    shown = stack.cli("invoices", "show", str(stack.show(sub_id)["invoices"][0]["id"])).stdout
    assert "paid" in shown
    events = stack.show(sub_id)["events"]
    ours = [e for e in events if e["actor"].startswith("cli:")]
    # create and every change record who (cli:<login>) and why
    assert [e["reason"].split(" (")[0] for e in ours] == [
        "created from the CLI",
        "holiday",
        "back",
        "upgrade",
        "leaving",
    ]
    bad = stack.cli("subscriptions", "pause", str(sub_id), check=False)
    assert bad.returncode == 2 and "--reason" in bad.stderr


def test_retry_all_dry_run_and_the_old_retry_form(stack: Stack) -> None:
    stack.start("worker", "worker")
    sub_id = stack.subscribe("insufficient-e2e-admin-2")
    stack.cli("scheduler", "--once")  # no scheduler loop: the dunning retry is not created
    wait_until(lambda: _status(stack, sub_id) == "past_due", 40, "the first decline")
    dry = stack.json("retry", "--all", "--category", "insufficient_funds", "--dry-run")
    assert (dry["dry_run"], dry["subscription_ids"]) == (True, [sub_id])
    assert len(stack.show(sub_id)["invoices"][0]["attempts"]) == 1
    done = stack.json("retry", str(sub_id), "--note", "customer says funds are back")
    assert done["subscription_id"] == sub_id
    wait_until(
        lambda: (
            len(stack.show(sub_id)["invoices"][0]["attempts"]) == 2
            and stack.show(sub_id)["invoices"][0]["attempts"][1]["state"] == "declined"
        ),
        40,
        "the manual retry to be declined",
    )
    both = stack.cli("retry", str(sub_id), "--all", "--reason", "x", check=False)
    assert both.returncode == 2 and "not both" in both.stderr
    [invoice] = stack.json("invoices", "list", "--status", "open")
    voided = stack.json("invoices", "void", str(invoice["id"]), "--reason", "goodwill")
    assert voided["status"] == "void"
    assert _status(stack, sub_id) == "active"


def test_refunds_through_the_cli_never_claim_what_the_gateway_did_not_say(stack: Stack) -> None:
    stack.start("worker", "worker")
    sub_id = stack.subscribe("approve-e2e-admin-3")
    stack.cli("scheduler", "--once")
    wait_until(lambda: stack.show(sub_id)["invoices"][0]["status"] == "paid", 40, "payment")
    attempt_id = stack.show(sub_id)["invoices"][0]["attempts"][0]["id"]
    too_much = stack.cli(
        "refund", str(attempt_id), "--amount", "99999999", "--reason", "x", check=False
    )
    assert too_much.returncode == 1
    assert too_much.stderr.startswith("error: cannot refund 99999999")
    assert len(too_much.stderr.strip().splitlines()) == 1
    # The gateway cannot be reached: the CLI says the refund did not happen, never "done".
    stack.stop("sandbox")
    refused = stack.cli(
        "refund", str(attempt_id), "--amount", "100", "--reason", "test", "--json", check=False
    )
    assert refused.returncode == 1
    assert '"succeeded"' not in refused.stdout
    reversed_ = stack.cli("reverse", str(attempt_id), "--reason", "test", check=False)
    assert reversed_.returncode == 1 and "succeeded" not in reversed_.stdout


def test_admin_serve_answers_with_a_token_and_never_logs_it(stack: Stack) -> None:
    root = stack.serve_admin({"BILLING_ADMIN_TOKENS": f"e2e-ops:operator:{TOKEN}"})
    assert httpx.get(f"{root}/api/status", timeout=5).status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    status = httpx.get(f"{root}/api/status", headers=headers, timeout=5)
    assert status.status_code == 200 and status.json()["charging"]["state"] == "running"
    created = httpx.post(
        f"{root}/api/subscriptions",
        headers=headers | {"Idempotency-Key": "e2e-1"},
        json={
            "customer_id": "cust-api",
            "binding_id": "approve-e2e-api",
            "amount": 1000,
            "schedule": "0 3 1 * *",
            "reason": "signup",
        },
        timeout=10,
    )
    assert created.status_code == 201
    audit = httpx.get(f"{root}/api/audit", headers=headers, timeout=5).json()
    assert audit[0]["actor"] == "e2e-ops"
    stack.stop("admin")
    assert TOKEN not in (stack.logs / "admin.log").read_text()
