"""The console in a real browser: headless Debian Chromium driven by Playwright.

An operator logs in, finds a past-due subscription, presses "Retry now" and sees it paid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import ROOT, Stack, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
TOKEN = "op-token-for-the-browser-test-0001"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_an_operator_retries_a_past_due_subscription_and_sees_it_paid(
    stack: Stack, tmp_path: Path
) -> None:
    # The default policy: the next automatic retry is a day away, so only the button helps.
    slow_dunning = {"BILLING_DUNNING_POLICY": str(ROOT / "config" / "dunning.toml")}
    stack.start("worker", "worker", env=slow_dunning)
    stack.start("scheduler", "scheduler", env=slow_dunning)
    sub_id = stack.subscribe("recover1-browser-0001", customer="customer-browser")
    wait_until(lambda: stack.show(sub_id)["status"] == "past_due", 40, "a failed first charge")

    with console_page(stack, TOKEN, slow_dunning) as page:
        page.click("a:has-text('Failing')")
        row = page.locator(f"tr[data-subscription='{sub_id}']")
        expect(row).to_contain_text("past_due")
        expect(row).to_contain_text("insufficient_funds")
        row.locator("button:has-text('Retry now')").click()
        expect(page.locator(".flash")).to_contain_text("Retry of invoice")
        status = page.locator("#subscription-status")
        for _ in range(60):
            if status.inner_text() == "active":
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(status).to_have_text("active")
        expect(page.locator("[data-invoice-status]").first).to_have_text("paid")
        page.screenshot(path=str(tmp_path / "console-paid.png"), full_page=True)
    paid = stack.ledger("DEPOSITED")
    assert len(paid) == 1
    audit = stack.show(sub_id)["events"]
    assert any(e["kind"] == "manual_retry" and e["actor"] == "alice" for e in audit)


@contextmanager
def console_page(stack: Stack, token: str, env: dict[str, str]) -> Iterator[Page]:
    """The admin app serving the console (plain http on 127.0.0.1) with ``token`` as an
    operator's, and a headless Chromium page logged in with it, on the dashboard."""
    base = stack.serve_admin(
        {
            **env,
            "BILLING_ADMIN_TOKENS": f"alice:operator:{token}",
            "BILLING_CONSOLE_HTTPS_ONLY": "false",  # plain http on 127.0.0.1
        }
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(f"{base}/console/login")
            page.fill("input[name=token]", token)
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_have_text("Dashboard")
            yield page
        finally:
            browser.close()
