"""The console's webhook pages in a real browser (headless Debian Chromium, Playwright), against
the admin app, the scheduler and a worker as subprocesses and a receiver over real HTTP.

An operator adds an endpoint (the signing secret shown once), sees a delivery the receiver
refused, presses "Redeliver" once the receiver is fixed and sees it succeed with the same
event id, reads the event's payload, then disables the endpoint with a reason.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from standardwebhooks import Webhook

from tests.e2e.conftest import ROOT, Stack, wait_until
from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

TOKEN = "op-token-for-the-webhooks-browser-test-01"


@dataclass
class BreakableReceiver(Receiver):
    """Answers 500 while ``broken`` is set, 200 otherwise; records every request."""

    broken: threading.Event = field(default_factory=threading.Event)
    got: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        status = 500 if self.broken.is_set() else 200
        self.got.append((headers, body, status))
        return status


@pytest.fixture
def receiver() -> Iterator[tuple[BreakableReceiver, str]]:
    made = BreakableReceiver()
    with made.serving() as url:
        yield made, url


def test_an_operator_adds_an_endpoint_and_redelivers_a_refused_event(
    stack: Stack, tmp_path: Path, receiver: tuple[BreakableReceiver, str]
) -> None:
    got, url = receiver
    got.broken.set()
    # The real policy and retry schedule: after a 500 the next automatic try is minutes away.
    slow = {"BILLING_DUNNING_POLICY": str(ROOT / "config" / "dunning.toml")}
    stack.start("worker", "worker", env=slow)
    stack.start("scheduler", "scheduler", env=slow)
    base = stack.serve_admin(
        {
            **slow,
            "BILLING_ADMIN_TOKENS": f"alice:operator:{TOKEN}",
            "BILLING_CONSOLE_HTTPS_ONLY": "false",
        }
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(f"{base}/console/login")
            page.fill("input[name=token]", TOKEN)
            page.click("button:has-text('Log in')")
            page.click("header a:has-text('Webhooks')")
            page.fill("#add-endpoint input[name=url]", url)
            page.fill("#add-endpoint input[name=events]", "subscription.created")
            page.click("#add-endpoint button:has-text('Add')")
            secret = page.locator("#signing-secret").inner_text()
            assert secret.startswith("whsec_")
            page.click("a:has-text('Back to the webhook endpoints')")
            expect(page.locator("#endpoints")).not_to_contain_text(secret)

            sub_id = stack.subscribe("approve-browser-hooks-1", customer="customer-hooks")
            wait_until(lambda: got.got, 40, "the first (refused) delivery")
            page.goto(f"{base}/console/webhooks?failed=1")
            row = page.locator("#deliveries tr[data-delivery]").first
            expect(row).to_contain_text("HTTP 500")
            expect(row).to_contain_text("subscription.created")

            got.broken.clear()
            row.locator("button:has-text('Redeliver')").click()
            expect(page.locator(".flash")).to_contain_text("enqueued again")
            wait_until(lambda: got.got[-1][2] == 200, 30, "the redelivery")
            page.goto(f"{base}/console/webhooks")
            expect(page.locator("#deliveries .delivery-state").first).to_have_text("succeeded")

            page.locator("#deliveries a:has-text('subscription.created')").first.click()
            payload = json.loads(page.locator("#payload").inner_text())
            assert (payload["type"], payload["data"]["id"]) == ("subscription.created", sub_id)

            page.goto(f"{base}/console/webhooks")
            endpoint = page.locator("#endpoints tr[data-endpoint]").first
            endpoint.locator("input[aria-label=reason]").fill("receiver moves to a new host")
            endpoint.locator("button:has-text('Disable')").click()
            expect(page.locator(".flash")).to_contain_text("disabled")
            expect(page.locator(".endpoint-status").first).to_contain_text(
                "disabled by alice: receiver moves to a new host"
            )
            page.screenshot(path=str(tmp_path / "console-webhooks.png"), full_page=True)
        finally:
            browser.close()

    (first_headers, first_body, _), (last_headers, last_body, _) = got.got[0], got.got[-1]
    assert first_headers["webhook-id"] == last_headers["webhook-id"]  # the same event
    assert first_body == last_body
    assert Webhook(secret).verify(last_body, last_headers)["data"]["id"] == sub_id
