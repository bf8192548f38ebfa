"""The console's "Needs attention" page, the disabled "Retry now" with its reason, the
charging-paused banner on every page, search, paging, bad form input, and revenue net of
refunds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from billing.bootstrap import App
from billing.domain.circuit_breaker import Circuit, CircuitState
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.subscription import NewSubscription
from billing.storage.circuit_row import save_circuit
from billing.storage.tables import ChargeAttempt, Invoice, Refund, Subscription
from tests.support.console import Browser, console_app
from tests.support.fakes import ManualClock, RecordingDispatcher
from tests.support.world import ServiceWorld, sqlite_url
from tests.unit.entrypoints.test_console import TOKENS


@dataclass
class Console:
    app: App
    clock: ManualClock
    dispatcher: RecordingDispatcher
    browser: Browser

    def subscribe(self, binding: str, customer: str = "cust-42", amount: int = 49900) -> int:
        new = NewSubscription(customer, binding, amount, "0 3 1 * *", start_at=self.clock())
        created = self.app.actions.subscriptions.create(new, actor="crm", reason="signup")
        return int(created.body["id"])

    def charge_due(self) -> None:
        self.app.scheduler.run_pass()
        while self.dispatcher.charges:
            charges, self.dispatcher.charges = self.dispatcher.charges, []
            for attempt_id in charges:
                self.app.charger.charge(attempt_id)

    def set_attempts(self, sub_id: int, **values: Any) -> None:
        """Put the subscription's attempts into a state the test needs."""
        self.change(
            update(ChargeAttempt).where(ChargeAttempt.subscription_id == sub_id).values(**values)
        )

    def change(self, statement: Any) -> None:
        with self.app.db.transaction() as session:
            session.execute(statement)

    def pause_charging(self, reason: str = "access denied") -> None:
        with self.app.db.transaction() as session:
            probe = self.clock() + timedelta(minutes=5)
            save_circuit(
                session,
                Circuit(state=CircuitState.OPEN, reason=reason, retry_at=probe),
                self.clock(),
            )

    def attempt_of(self, sub_id: int) -> ChargeAttempt:
        with self.app.db.transaction() as session:
            found = session.scalars(
                select(ChargeAttempt).where(ChargeAttempt.subscription_id == sub_id)
            ).first()
            assert found is not None
            return found


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    world = ServiceWorld.build(sqlite_url(tmp_path), policy=DEFAULT_POLICY)
    app, clock = world.app, world.clock
    browser = Browser(console_app(app, clock, TOKENS, display_timezone="Asia/Tokyo"))
    browser.login("op-token")
    yield Console(app, clock, world.dispatcher, browser)
    browser.close()
    app.close()


def _section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"no section {name}"
    return match.group(1)


def test_needs_attention_lists_every_kind_with_counts_and_its_action(console: Console) -> None:
    operator_sub = console.subscribe("timeout-1", customer="c-operator")
    refund_sub = console.subscribe("approve-2", customer="c-refund")
    held_sub = console.subscribe("approve-3", customer="c-held")
    transient_sub = console.subscribe("insufficient-4", customer="c-transient")
    console.charge_due()
    console.set_attempts(operator_sub, state="needs_operator")
    console.set_attempts(refund_sub, needs_refund=True)
    console.change(update(Subscription).where(Subscription.id == held_sub).values(status="held"))
    console.change(
        update(Invoice)
        .where(Invoice.subscription_id == transient_sub)
        .values(
            last_category="transient",
            last_reason="gateway_unavailable",
            failing_since=console.clock() - timedelta(days=2),
        )
    )
    paid = console.attempt_of(refund_sub)
    with console.app.db.transaction() as session:
        session.add(
            Refund(
                attempt_id=paid.id, invoice_id=paid.invoice_id, subscription_id=refund_sub,
                kind="refund", amount=100, currency="643", external_refund_id="r-unknown-1",
                state="unknown", actor="ops", reason="asked", created_at=console.clock(),
                updated_at=console.clock(),
            )
        )  # fmt: skip

    home = console.browser.get("/").text
    assert 'id="attention-total">5<' in home
    page = console.browser.get("/attention").text
    operator_rows = _section(page, "needs_operator")
    waiting = console.attempt_of(operator_sub)
    assert f'href="/subscriptions/{operator_sub}"' in operator_rows
    assert f'action="/attempts/{waiting.id}/resolve"' in operator_rows  # the action in place
    assert "Check &amp; resolve" in operator_rows
    refund_rows = _section(page, "needs_refund")
    assert f'action="/attempts/{paid.id}/refund"' in refund_rows
    assert "Refund the second charge" in refund_rows
    held_rows = _section(page, "held")
    assert "c-held" in held_rows and "Fix the data, then resume" in held_rows
    transient_rows = _section(page, "long_transient")
    assert "c-transient" in transient_rows and "gateway_unavailable" in transient_rows
    assert f'action="/subscriptions/{transient_sub}/retry"' in transient_rows
    assert "r-unknown-1" not in page and "c-refund" not in _section(page, "held")
    assert '<span class="count">1</span>' in _section(page, "refunds_unknown")

    # The second charge is refunded from the page: the row's form works.
    csrf = console.browser.csrf("/attention")
    done = console.browser.post(
        f"/attempts/{paid.id}/refund",
        {"csrf": csrf, "reason": "second charge", "nonce": "n-1", "back": "/attention"},
    )
    assert done.headers["location"] == "/attention"
    assert "Refund of attempt" in console.browser.get("/attention").text


def test_retry_now_is_disabled_with_the_reason_where_it_would_be_refused(
    console: Console,
) -> None:
    lost = console.subscribe("insufficient-1", customer="c-lost")
    open_one = console.subscribe("insufficient-2", customer="c-open")
    console.charge_due()
    console.set_attempts(lost, category="do_not_retry", reason="lost_card")
    page = console.browser.get(f"/subscriptions/{lost}").text
    assert re.search(r'<button type="submit" id="retry-now" disabled title="[^"]*lost', page)
    assert "set a new card first" in page
    csrf = console.browser.csrf(f"/subscriptions/{lost}")
    refused = console.browser.post(f"/subscriptions/{lost}/retry", {"csrf": csrf})
    assert "Not done" in console.browser.get(refused.headers["location"]).text
    assert console.dispatcher.charges == []

    console.app.actions.subscriptions.set_binding(
        lost, "approve-new", actor="ops", reason="new card"
    )
    console.dispatcher.charges.clear()
    assert 'id="retry-now" disabled' not in console.browser.get(f"/subscriptions/{lost}").text

    console.set_attempts(open_one, state="sending")
    in_flight = console.browser.get(f"/subscriptions/{open_one}").text
    assert "already in flight" in in_flight and 'id="retry-now" disabled' in in_flight

    console.pause_charging("merchant configuration error: access denied")
    failing = console.browser.get("/failing").text
    assert failing.count('disabled title="charging is paused for everyone') >= 1


def test_the_paused_banner_is_on_every_page_with_the_next_probe_in_the_console_zone(
    console: Console,
) -> None:
    sub_id = console.subscribe("approve-1")
    for path in ("/", "/attention", "/failing", "/audit", f"/subscriptions/{sub_id}"):
        assert 'id="paused-banner"' not in console.browser.get(path).text
    console.pause_charging("access denied")
    for path in ("/", "/attention", "/failing", "/audit", f"/subscriptions/{sub_id}"):
        page = console.browser.get(path).text
        assert 'id="paused-banner"' in page, path
        assert "Charging is paused for everyone: access denied" in page
        assert "times in Asia/Tokyo" in page
    # ManualClock starts at 2026-12-01 00:00 UTC: the probe 5 minutes later, in Tokyo.
    assert "Next probe of the gateway: 01 Dec 2026 09:05 JST" in page


def test_search_by_subscription_customer_or_order_number(console: Console) -> None:
    first = console.subscribe("insufficient-1", customer="c-alpha")
    console.subscribe("approve-2", customer="c-beta")
    console.subscribe("approve-3", customer="c-beta")
    console.charge_due()
    order = console.attempt_of(first).order_number
    for query in (str(first), "c-alpha", order):
        found = console.browser.get(f"/search?q={query}")
        assert found.status_code == 303 and found.headers["location"] == f"/subscriptions/{first}"
    many = console.browser.get("/search?q=c-beta").text
    assert many.count('href="/subscriptions/') >= 2 and "c-beta" in many
    for nothing in ("nobody", str(2**64), "a%00b"):
        page = console.browser.get(f"/search?q={nothing}")
        assert page.status_code == 200 and "No subscription has that" in page.text


def test_audit_and_failing_lists_are_paginated(console: Console) -> None:
    for n in range(55):
        console.subscribe("approve-1", customer=f"c-{n}")
    first = console.browser.get("/audit?all=1").text
    assert 'rel="next" href="?page=2&amp;all=1"' in first
    second = console.browser.get("/audit?all=1&page=2").text
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert console.browser.get("/audit?page=zzz").status_code == 200


def test_bad_form_input_is_one_clear_line_and_changes_nothing(console: Console) -> None:
    sub_id = console.subscribe("approve-1")
    page = f"/subscriptions/{sub_id}"
    for form, says in (
        ({"amount": "1234567890123"}, "at most 12 digits"),
        ({"amount": "\u0664\u0669\u0669"}, "ASCII digits"),
        ({"description": "a\x00b"}, "NUL"),
        ({"currency": "\u0666\u0664\u0663"}, "currency"),
    ):
        csrf = console.browser.csrf(page)
        done = console.browser.post(
            f"{page}/update", {"csrf": csrf, "reason": "fix", "back": page, **form}
        )
        assert done.status_code == 303
        shown = console.browser.get(page).text
        assert "Not done" in shown and says in shown, form
    view = console.app.read.show_subscription(sub_id)
    assert (view["amount"], view["currency"], view["description"]) == (49900, "643", None)
    huge = console.browser.post(f"/subscriptions/{2**64}/pause", {"csrf": "x"})
    assert huge.status_code in {303, 403}
    assert console.browser.get(f"/subscriptions/{2**64}").status_code == 404


def test_held_subscription_data_is_fixed_then_resumed(console: Console) -> None:
    sub_id = console.subscribe("approve-1")
    console.change(update(Subscription).where(Subscription.id == sub_id).values(status="held"))
    page = f"/subscriptions/{sub_id}"
    shown = console.browser.get(page).text
    assert "<details open>" in shown and "Fix the data" in shown
    csrf = console.browser.csrf(page)
    console.browser.post(
        f"{page}/update",
        {"csrf": csrf, "reason": "typo", "back": page, "amount": "50000", "currency": "643",
         "description": "gold"},
    )  # fmt: skip
    console.browser.post(f"{page}/resume", {"csrf": csrf, "reason": "fixed", "back": page})
    view = console.app.read.show_subscription(sub_id)
    assert (view["amount"], view["description"], view["status"]) == (50000, "gold", "active")


def test_revenue_is_net_of_refunds_and_a_refunded_invoice_says_so(console: Console) -> None:
    sub_id = console.subscribe("approve-1", amount=10000)
    console.charge_due()
    home = console.browser.get("/").text
    assert "100.00 RUB" in home
    paid = console.attempt_of(sub_id)
    console.app.actions.refunds.refund(
        attempt_id=paid.id, amount=None, actor="ops", reason="goodwill", idempotency_key="k-1"
    )
    home = console.browser.get("/").text
    assert "100.00 RUB" not in home and "0.00 RUB" in home
    page = console.browser.get(f"/subscriptions/{sub_id}").text
    assert f'data-invoice-status="{paid.invoice_id}">refunded<' in page


def test_every_time_on_the_subscription_page_is_in_the_console_zone(console: Console) -> None:
    sub_id = console.subscribe("insufficient-1")  # the subscription bills in Europe/Moscow
    console.charge_due()
    page = console.browser.get(f"/subscriptions/{sub_id}").text
    dunning = re.search(r"<h2>Dunning</h2>\s*<ul>(.*?)</ul>", page, re.S)
    assert dunning, "no dunning timeline"
    assert "JST" in dunning.group(1)
    assert "MSK" not in page


def test_a_disabled_webhook_endpoint_needs_attention_and_can_be_enabled_again(
    console: Console,
) -> None:
    added = console.app.webhooks.add(
        "https://saas.example/hooks", description="crm", actor="ops", reason="crm hooks"
    )
    endpoint_id = int(added["id"])
    console.app.webhooks.set_enabled(endpoint_id, False, actor="ops", reason="receiver down")
    page = console.browser.get("/attention").text
    section = _section(page, "disabled_webhooks")
    assert f'data-endpoint="{endpoint_id}"' in section
    assert "https://saas.example/hooks" in section and "Enable again" in section
    assert 'id="attention-total">1<' in page
    form = {
        "csrf": console.browser.csrf("/attention"),
        "back": "/attention",
        "reason": "the receiver answers again",
    }
    done = console.browser.post(f"/webhooks/{endpoint_id}/enable", form)
    assert done.status_code == 303
    assert "None." in _section(console.browser.get("/attention").text, "disabled_webhooks")
    [listed] = console.app.webhooks.list_endpoints()
    assert listed["enabled"] is True
