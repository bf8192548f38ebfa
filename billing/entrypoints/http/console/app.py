"""Console pages (Starlette + Jinja). Log in with an operator or viewer token; the session
is a signed, HttpOnly, SameSite=strict (and, unless turned off for local use, Secure) cookie
holding a random session id; every form carries a CSRF token.

Every request re-checks the session server-side
(:mod:`billing.entrypoints.http.console.sessions`): a logged-out session, one past its
fixed lifetime, or one whose token was removed from the settings is refused. The cookie
never holds a token.

This module puts the app together: login and logout here, the pages in :mod:`.pages` and
:mod:`.subscription_pages`, the forms in :mod:`.actions`, webhooks and events in
:mod:`.webhook_pages`, the test clock in :mod:`.clock_page`, what they share in :mod:`.kit`.
It decides nothing about money.
"""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing.entrypoints.http.console.actions import action_routes
from billing.entrypoints.http.console.clock_page import clock_routes
from billing.entrypoints.http.console.kit import CONSOLE_ROLES, ConsoleDeps, Kit, Operator, log
from billing.entrypoints.http.console.pages import page_routes
from billing.entrypoints.http.console.subscription_pages import subscription_routes
from billing.entrypoints.http.console.webhook_pages import webhook_routes

__all__ = ["ConsoleDeps", "Operator", "create_console_app"]


def create_console_app(
    deps: ConsoleDeps, *, session_secret: str, https_only: bool = True, root_path: str = ""
) -> Starlette:
    kit = Kit(deps, root_path)
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=session_secret,
            session_cookie="billing_console",
            same_site="strict",
            https_only=https_only,
            max_age=int(kit.store.lifetime.total_seconds()),
        )
    ]
    routes = [
        *_login_routes(kit),
        *page_routes(kit),
        *subscription_routes(kit),
        *action_routes(kit),
        *webhook_routes(kit),
        *clock_routes(kit),
    ]
    return Starlette(routes=routes, middleware=middleware)


def _login_routes(kit: Kit) -> list[Route]:
    deps, store = kit.deps, kit.store

    async def login_form(request: Request) -> Response:
        return kit.page(request, "login.html")

    async def login(request: Request) -> Response:
        form = await kit.csrf_ok(request)
        if form is None:
            return kit.page(request, "login.html", 403, error="The form expired; try again.")
        token = str(form.get("token", ""))
        operator = deps.authenticate(token) if token else None
        if operator is None or operator.role not in CONSOLE_ROLES:
            log.warning(
                "console: failed login from %s", request.client.host if request.client else "?"
            )
            return kit.page(request, "login.html", 401, error="That token is not valid here.")
        session_id = await run_in_threadpool(
            lambda: store.open(
                deps.session_now(), operator=operator.name, role=operator.role, token=token
            )
        )
        request.session.clear()
        request.session["sid"] = session_id
        request.session["csrf"] = secrets.token_urlsafe(32)
        log.info("console: %s (%s) logged in", operator.name, operator.role)
        return kit.to("/")

    async def logout(request: Request) -> Response:
        if await kit.csrf_ok(request) is not None:
            session_id = request.session.get("sid")
            if isinstance(session_id, str):
                await run_in_threadpool(store.revoke, session_id, deps.session_now())
            request.session.clear()
        return kit.to("/login")

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
