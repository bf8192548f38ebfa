"""The web console over ASGI: login, CSRF, roles, and the pages an operator reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.auth_tokens import token_fingerprint
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.subscription import NewSubscription
from billing.entrypoints.http.console import Operator
from billing.services.actions.subscriptions import SubscriptionActions
from tests.support.console import Browser, console_app
from tests.support.fakes import RecordingDispatcher
from tests.support.world import ServiceWorld, sqlite_url

TOKENS = {
    "op-token": Operator("alice", "operator"),
    "view-token": Operator("bob", "viewer"),
    "backend-token": Operator("saas", "backend"),
}
OWNERS = {token_fingerprint(token): who for token, who in TOKENS.items()}
#: A logged-out browser on the console, the subscriptions use cases, and the charge queue.
Setup = tuple[Browser, SubscriptionActions, RecordingDispatcher]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with ServiceWorld.build(sqlite_url(tmp_path), policy=DEFAULT_POLICY) as world:
        browser = Browser(console_app(world.app, world.clock, TOKENS))
        yield browser, world.app.actions.subscriptions, world.dispatcher
        browser.close()


def _subscribe(subscriptions: SubscriptionActions) -> int:
    created = subscriptions.create(
        NewSubscription(
            customer_id="cust-42",
            binding_id="approve-1",
            amount=49900,
            schedule="0 3 1 * *",
            start_at=subscriptions.clock(),
        ),
        actor="crm",
        reason="signup",
    )
    return int(created.body["id"])


def test_pages_need_a_login(setup: Setup) -> None:
    browser, _, _ = setup
    response = browser.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_a_wrong_token_is_refused_and_a_backend_token_cannot_log_in(setup: Setup) -> None:
    browser, _, _ = setup
    assert browser.login("nope").status_code == 401
    assert browser.login("backend-token").status_code == 401
    assert browser.get("/").status_code == 303


def test_login_without_the_csrf_token_is_refused(setup: Setup) -> None:
    browser, _, _ = setup
    browser.get("/login")
    assert browser.post("/login", {"token": "op-token"}).status_code == 403


def test_the_session_cookie_is_httponly_and_samesite(setup: Setup) -> None:
    browser, _, _ = setup
    response = browser.login("op-token")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "op-token" not in cookie


def test_an_operator_sees_the_dashboard_and_retries_a_subscription(setup: Setup) -> None:
    browser, subscriptions, dispatcher = setup
    sub_id = _subscribe(subscriptions)
    browser.login("op-token")
    dashboard = browser.get("/")
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    page = browser.get(f"/subscriptions/{sub_id}")
    assert "cust-42" in page.text and "…ve-1" in page.text
    assert "approve-1" not in page.text  # the full binding id is never shown
    csrf = browser.csrf(f"/subscriptions/{sub_id}")
    response = browser.post(f"/subscriptions/{sub_id}/retry", {"csrf": csrf})
    assert response.status_code == 303
    # Nothing is open yet (the period has not been invoiced): the refusal is shown.
    assert "Not done" in browser.get(response.headers["location"]).text
    assert dispatcher.charges == []


def test_a_retry_without_csrf_or_by_a_viewer_changes_nothing(setup: Setup) -> None:
    browser, subscriptions, dispatcher = setup
    sub_id = _subscribe(subscriptions)
    browser.login("op-token")
    assert browser.post(f"/subscriptions/{sub_id}/retry", {"csrf": "forged"}).status_code == 403
    viewer = browser
    viewer.post("/logout", {"csrf": viewer.csrf("/")})
    viewer.login("view-token")
    page = viewer.get(f"/subscriptions/{sub_id}")
    assert "Retry now" not in page.text
    response = viewer.post(f"/subscriptions/{sub_id}/retry", {"csrf": viewer.csrf("/")})
    assert response.status_code == 403
    assert dispatcher.charges == []


def test_the_audit_log_shows_who_did_what(setup: Setup) -> None:
    browser, subscriptions, _ = setup
    _subscribe(subscriptions)
    browser.login("view-token")
    page = browser.get("/audit?all=1")
    assert "subscription_created" in page.text


def test_an_operator_pauses_and_resumes_with_a_reason_kept_in_the_audit_log(setup: Setup) -> None:
    browser, subscriptions, _ = setup
    sub_id = _subscribe(subscriptions)
    browser.login("op-token")
    page = f"/subscriptions/{sub_id}"
    csrf = browser.csrf(page)
    browser.post(f"{page}/pause", {"csrf": csrf, "reason": "customer asked", "back": page})
    shown = browser.get(page).text
    assert "Subscription 1 paused." in shown and 'id="subscription-status">paused' in shown
    browser.post(f"{page}/resume", {"csrf": csrf, "reason": "back from holiday", "back": page})
    assert 'id="subscription-status">active' in browser.get(page).text
    audit = browser.get("/audit").text
    assert "customer asked" in audit and "back from holiday" in audit and "alice" in audit


def test_an_action_without_a_reason_is_refused_and_changes_nothing(setup: Setup) -> None:
    browser, subscriptions, _ = setup
    sub_id = _subscribe(subscriptions)
    browser.login("op-token")
    page = f"/subscriptions/{sub_id}"
    browser.post(f"{page}/cancel", {"csrf": browser.csrf(page), "reason": "", "back": page})
    shown = browser.get(page).text
    assert "Not done" in shown and 'id="subscription-status">active' in shown
