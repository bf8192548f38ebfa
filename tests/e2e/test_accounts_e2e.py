"""End to end: both gateway dialects against a strict sandbox, and two merchant accounts
where one has a wrong password. Subprocesses, real PostgreSQL and Redis, HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, _healthy, free_port, wait_until

pytestmark = pytest.mark.e2e

PRICE = 49900


def _strict_sandbox(stack: Stack, dialect: str, *extra: str) -> str:
    """Start a strict sandbox of ``dialect``; every process of the stack talks to it."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    stack.start("strict-sandbox", "sandbox", "--port", str(port), "--dialect", dialect, *extra)
    wait_until(lambda: _healthy(root), 20, "the strict sandbox to answer")
    stack.sandbox_url = root
    return root


def _subscribe(stack: Stack, binding: str, *extra: str) -> int:
    created = stack.json(
        "subscriptions",
        "create",
        "--customer-id",
        f"cust-{binding}",
        "--binding-id",
        binding,
        "--amount",
        str(PRICE),
        "--schedule",
        "0 3 1 * *",
        "--start-at",
        datetime.now(UTC).isoformat(),
        *extra,
    )
    return int(created["id"])


def _invoice(stack: Stack, sub_id: int) -> dict[str, Any]:
    invoices = stack.show(sub_id)["invoices"]
    return dict(invoices[0]) if invoices else {}


def _served(root: str) -> list[str]:
    return [m for _, m in httpx.get(f"{root}/sandbox/requests", timeout=5).json()["requests"]]


@pytest.mark.parametrize("dialect", ["rbs", "all2pay"])
def test_each_dialect_charges_checks_and_refunds_against_its_strict_router(
    stack: Stack, dialect: str
) -> None:
    root = _strict_sandbox(stack, dialect)
    # A bare host: each method goes to the dialect's own path (/payment/rest or /v1).
    stack.env |= {"BILLING_GATEWAY_URL": root, "BILLING_GATEWAY_DIALECT": dialect}
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    sub_id = _subscribe(
        stack,
        f"pending-dialect-{dialect}",  # settled by getOrderStatusExtended.do
        "--customer-email",
        "Anna@Example.com",
        "--customer-phone",
        "8 (900) 123-45-67",
    )
    wait_until(lambda: _invoice(stack, sub_id).get("status") == "paid", 60, "the charge")
    [attempt] = _invoice(stack, sub_id)["attempts"]
    refund = stack.json("refund", str(attempt["id"]), "--amount", "100", "--reason", "goodwill")
    assert refund["state"] == "succeeded"
    [order] = stack.ledger()
    assert (order["state"], order["refundedAmount"]) == ("REFUNDED", 100)
    # The fiscal receipt contacts went in additionalParameters, as the doc describes.
    assert order["additionalParameters"]["email"] == "Anna@example.com"
    assert order["additionalParameters"]["phone"] == "+79001234567"
    served = _served(root)
    assert {"recurrentPayment.do", "getOrderStatusExtended.do", "refund.do"} <= set(served)
    assert [m for m in served if m.startswith("refused:")] == []
    # Viewers see the contacts masked; the logs never carry them.
    view = stack.show(sub_id)
    assert (view["customer_email"], view["customer_phone"]) == ("A***@example.com", "+7******4567")
    for name in ("worker", "scheduler"):
        log = (stack.logs / f"{name}.log").read_text()
        assert "Anna@example.com" not in log and "+79001234567" not in log


def test_the_wrong_dialect_pauses_charging_and_nobody_is_dunned(stack: Stack) -> None:
    root = _strict_sandbox(stack, "all2pay")
    # A JSON-only router, spoken to in the classic RBS encoding (form status queries).
    stack.env |= {"BILLING_GATEWAY_URL": f"{root}/v1", "BILLING_GATEWAY_DIALECT": "rbs"}
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    sub_id = _subscribe(stack, "pending-wrong-dialect")  # its outcome needs a status query
    wait_until(lambda: stack.json("status")["charging"]["state"] == "paused", 40, "a pause")
    assert stack.show(sub_id)["status"] == "active"
    assert any(m.startswith("refused:") for m in _served(root))


def test_two_accounts_one_with_a_wrong_password_only_that_one_pauses(stack: Stack) -> None:
    root = _strict_sandbox(stack, "rbs", "--login", "eu-login:eu-right-pass")
    stack.env |= {
        "BILLING_GATEWAY_URL": root,
        "BILLING_MERCHANTS__EU__URL": root,
        "BILLING_MERCHANTS__EU__USERNAME": "eu-login",
        "BILLING_MERCHANTS__EU__PASSWORD": "eu-wrong-pass",
    }
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    eu = [_subscribe(stack, f"approve-eu-{n}", "--merchant-account", "eu") for n in range(2)]
    home = [_subscribe(stack, f"approve-home-{n}") for n in range(2)]

    def paused() -> bool:
        accounts = {a["name"]: a for a in stack.json("status")["merchant_accounts"]}
        return bool(accounts["eu"]["state"] == "paused")

    wait_until(paused, 40, "the eu account to pause")
    wait_until(
        lambda: all(_invoice(stack, s).get("status") == "paid" for s in home),
        40,
        "the default account's charges",
    )
    status = stack.json("status")
    accounts = {a["name"]: a for a in status["merchant_accounts"]}
    assert accounts["default"]["state"] == "running"
    assert "auth_error" in accounts["eu"]["reason"]
    assert status["charging"]["state"] == "partly_paused"
    # Nobody is dunned for the merchant's mistake; the bank never saw an eu charge.
    for sub_id in eu:
        view = stack.show(sub_id)
        assert view["status"] == "active" and view["merchant_account"] == "eu"
        assert {i["status"] for i in view["invoices"]} == {"open"}
    assert {o["bindingId"] for o in stack.ledger()} == {f"approve-home-{n}" for n in range(2)}
    human = stack.cli("status").stdout
    assert "account eu" in human and "PAUSED" in human
    for name in ("worker", "scheduler"):
        assert "eu-wrong-pass" not in (stack.logs / f"{name}.log").read_text()

    # The password fixed: the probe lets the account in and its charges go through.
    stack.stop("worker")
    stack.stop("scheduler")
    stack.env["BILLING_MERCHANTS__EU__PASSWORD"] = "eu-right-pass"
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    wait_until(
        lambda: all(_invoice(stack, s).get("status") == "paid" for s in eu),
        60,
        "the eu charges after the fix",
    )
    assert {stack.show(s)["status"] for s in eu + home} == {"active"}
    assert len(stack.ledger("DEPOSITED")) == 4


def test_a_subscription_names_a_configured_account_or_is_refused(stack: Stack) -> None:
    result = stack.cli(
        "subscriptions",
        "create",
        "--customer-id",
        "c1",
        "--binding-id",
        "approve-x",
        "--amount",
        "100",
        "--schedule",
        "0 3 1 * *",
        "--merchant-account",
        "nowhere",
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "merchant_account 'nowhere' is not configured" in lines[0]
    assert stack.json("subscriptions", "list") == []
