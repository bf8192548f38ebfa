"""Console sessions end when they should: logout, a removed token, the fixed lifetime."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.bootstrap import App
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.entrypoints.http.console import Operator, create_console_app
from billing.storage.database import Database
from tests.support.console import Browser, console_app, console_deps
from tests.support.fakes import ManualClock
from tests.support.world import ServiceWorld, sqlite_url

SECRET = "a-console-session-secret-for-the-tests-0123456789"
ALICE = "alice-operator-token-000000000001"
BOB = "bob-viewer-token-00000000000000002"


@dataclass
class World:
    db: Database
    clock: ManualClock
    services: App

    def app(self, tokens: dict[str, Operator], *, https_only: bool = False) -> Any:
        return console_app(self.services, self.clock, tokens, secret=SECRET, https_only=https_only)


EVERYONE = {ALICE: Operator("alice", "operator"), BOB: Operator("bob", "viewer")}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ServiceWorld.build(sqlite_url(tmp_path), policy=DEFAULT_POLICY) as built:
        yield World(built.db, built.clock, built.app)


def _is_logged_in(response: httpx.Response) -> bool:
    if response.status_code == 200:
        return True
    assert response.status_code == 303 and response.headers["location"] == "/login"
    return False


def test_a_logged_out_cookie_is_refused_when_replayed(world: World) -> None:
    browser = Browser(world.app(EVERYONE))
    assert browser.login(ALICE).status_code == 303
    stolen = browser.cookie()
    assert _is_logged_in(browser.get("/"))
    browser.post("/logout", {"csrf": browser.csrf("/")})
    assert not _is_logged_in(browser.get("/"))

    thief = Browser(world.app(EVERYONE))
    assert not _is_logged_in(thief.use_cookie(stolen).get("/"))
    browser.close()
    thief.close()


def test_a_cookie_whose_token_was_removed_from_the_settings_is_refused(world: World) -> None:
    browser = Browser(world.app(EVERYONE))
    assert browser.login(ALICE).status_code == 303
    cookie = browser.cookie()

    # The app restarts with the same session secret; alice's token is gone, bob's stays.
    restarted = Browser(world.app({BOB: EVERYONE[BOB]}))
    assert not _is_logged_in(restarted.use_cookie(cookie).get("/"))

    # The same cookie still works where alice's token is still configured.
    unchanged = Browser(world.app(EVERYONE))
    assert _is_logged_in(unchanged.use_cookie(cookie).get("/"))
    for b in (browser, restarted, unchanged):
        b.close()


def test_a_token_given_to_someone_else_does_not_carry_the_old_session(world: World) -> None:
    browser = Browser(world.app(EVERYONE))
    browser.login(ALICE)
    cookie = browser.cookie()
    renamed = Browser(world.app({ALICE: Operator("mallory", "operator")}))
    assert not _is_logged_in(renamed.use_cookie(cookie).get("/"))
    browser.close()
    renamed.close()


def test_activity_does_not_extend_a_session_past_its_fixed_lifetime(world: World) -> None:
    browser = Browser(world.app(EVERYONE))
    browser.login(BOB)
    for _ in range(7):  # busy all day: a page every hour
        world.clock.advance(hours=1)
        assert _is_logged_in(browser.get("/"))
    world.clock.advance(minutes=59)
    assert _is_logged_in(browser.get("/"))
    world.clock.advance(minutes=2)  # 8 hours and a minute after logging in
    assert not _is_logged_in(browser.get("/"))
    browser.close()


def test_the_session_cookie_is_secure_unless_turned_off(world: World) -> None:
    secure = Browser(world.app(EVERYONE, https_only=True), base_url="https://console.test")
    response = secure.login(ALICE)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()
    secure.close()

    # Not saying anything about https_only: the cookie is Secure.
    default = Browser(
        create_console_app(
            console_deps(world.services, world.clock, EVERYONE), session_secret=SECRET
        ),
        base_url="https://console.test",
    )
    assert "secure" in default.login(ALICE).headers["set-cookie"].lower()
    default.close()


def test_the_cookie_carries_no_name_role_or_token(world: World) -> None:
    import base64

    browser = Browser(world.app(EVERYONE))
    browser.login(ALICE)
    payload = browser.cookie().split(".")[0]
    decoded = base64.b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert "alice" not in decoded and ALICE not in decoded and "operator" not in decoded
    browser.close()
