"""The web console as a person's browser sees it, over ASGI: a cookie-keeping client with
the login and CSRF steps, and the console app wired to a test world's use cases."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import httpx

from billing.auth_tokens import token_fingerprint
from billing.bootstrap import App
from billing.entrypoints.http.console import ConsoleDeps, Operator, create_console_app
from billing.services.ports import Clock

#: The session-cookie signing secret of the console tests.
TEST_SECRET = "test-secret"


class Browser:
    """Keeps cookies like a browser; can replay a stolen cookie against another app."""

    def __init__(self, app: Any, base_url: str = "http://console.test") -> None:
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    def get(self, path: str) -> httpx.Response:
        return asyncio.run(self.client.get(path))

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return asyncio.run(self.client.post(path, data=data))

    def csrf(self, path: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, "no CSRF field on the page"
        return match.group(1)

    def login(self, token: str) -> httpx.Response:
        return self.post("/login", {"csrf": self.csrf("/login"), "token": token})

    def use_cookie(self, value: str) -> Browser:
        self.client.cookies.set("billing_console", value)
        return self

    def cookie(self) -> str:
        value = self.client.cookies.get("billing_console")
        assert value, "no session cookie"
        return value

    def close(self) -> None:
        asyncio.run(self.client.aclose())


def console_deps(
    app: App, clock: Clock, tokens: Mapping[str, Operator], **options: Any
) -> ConsoleDeps:
    """The console's collaborators: ``app``'s use cases, and ``tokens`` as the configured
    console tokens (each token's owner found by its fingerprint, as in production)."""
    owners = {token_fingerprint(token): who for token, who in tokens.items()}
    return ConsoleDeps(
        db=app.db,
        app=app,
        clock=clock,
        authenticate=tokens.get,
        owner=owners.get,
        **options,
    )


def console_app(
    app: App,
    clock: Clock,
    tokens: Mapping[str, Operator],
    *,
    secret: str = TEST_SECRET,
    https_only: bool = False,
    **options: Any,
) -> Any:
    """The console ASGI app; plain http by default in tests (the Secure cookie flag is
    turned off explicitly), ``options`` go to :class:`ConsoleDeps`."""
    deps = console_deps(app, clock, tokens, **options)
    return create_console_app(deps, session_secret=secret, https_only=https_only)
