"""The console in a real browser (headless Debian Chromium, Playwright): the "Needs
attention" page lists a held subscription with its count and a way to fix it, and "Retry
now" is disabled, with the reason, for a subscription whose card was declined as lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from billing.storage.database import Database
from billing.storage.tables import Subscription
from tests.e2e.conftest import ROOT, Stack, wait_until
from tests.e2e.test_console_browser import console_page

pytestmark = pytest.mark.e2e

TOKEN = "op-token-for-the-attention-test-01"


def test_needs_attention_and_a_disabled_retry_in_a_browser(
    stack: Stack, pg_url: str, tmp_path: Path
) -> None:
    slow_dunning = {"BILLING_DUNNING_POLICY": str(ROOT / "config" / "dunning.toml")}
    stack.start("worker", "worker", env=slow_dunning)
    stack.start("scheduler", "scheduler", env=slow_dunning)
    lost = stack.subscribe("stolen-browser-0001", customer="customer-lost-card")
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    held = stack.json(
        "subscriptions", "create", "--customer-id", "customer-bad-data", "--binding-id",
        "approve-browser-0002", "--amount", "49900", "--schedule", "0 3 1 * *",
        "--start-at", later,
    )["id"]  # fmt: skip
    db = Database(pg_url)
    with db.transaction() as session:
        session.execute(update(Subscription).where(Subscription.id == held).values(status="held"))
    db.dispose()
    wait_until(
        lambda: any(
            a["reason"] == "lost_card"
            for invoice in stack.show(lost)["invoices"]
            for a in invoice["attempts"]
        ),
        40,
        "the lost-card decline",
    )

    with console_page(stack, TOKEN, slow_dunning) as page:
        page.click("header a:has-text('Needs attention')")
        held_section = page.locator("section#held")
        expect(held_section.locator(".count")).to_have_text("1")
        row = held_section.locator(f"tr[data-subscription='{held}']")
        expect(row).to_contain_text("customer-bad-data")
        row.locator("a:has-text('Fix the data, then resume')").click()
        expect(page.locator("#subscription-status")).to_have_text("held")
        expect(page.locator("details[open] summary")).to_contain_text("Fix the data")
        page.screenshot(path=str(tmp_path / "console-held.png"), full_page=True)

        page.fill("header input[name=q]", "customer-lost-card")
        page.press("header input[name=q]", "Enter")
        expect(page.locator("h1")).to_contain_text(f"Subscription #{lost}")
        retry = page.locator("#retry-now")
        expect(retry).to_be_disabled()
        expect(page.locator("#retry-refused")).to_contain_text("lost, stolen or fraud")
        expect(retry).to_have_attribute(
            "title", "the card was declined as lost, stolen or fraud: set a new card first"
        )
        page.screenshot(path=str(tmp_path / "console-retry-disabled.png"), full_page=True)
    assert len(stack.ledger("DEPOSITED")) == 0
