"""The one ASGI app ``billing admin serve`` runs: ``/api`` (the admin API, OpenAPI at
``/openapi.json``), ``/console`` (the operators' pages) and ``/callbacks`` (the gateway's
notifications, when a key or unsigned callbacks are configured); ``/`` redirects to the
console.

It only puts the three apps together over one :class:`billing.bootstrap.App` and one set
of use cases. It decides nothing about money, and nothing connects at import time.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from billing.auth_tokens import TokenConfig
from billing.entrypoints.http.admin.app import create_admin_app
from billing.entrypoints.http.callbacks import callback_config, create_callback_app
from billing.entrypoints.http.console import ConsoleDeps, Operator, create_console_app
from billing.services.ports import system_clock

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from billing.bootstrap import App

log = logging.getLogger("billing.admin")


def create_asgi_app(app: App, tokens: TokenConfig) -> FastAPI:
    """The admin API with the console mounted and the callback routes added.

    Raises ConfigurationError when no admin token (or no usable callback key) is set.
    """
    asgi = create_admin_app(app, tokens)
    asgi.mount("/console", _console(app, tokens))
    settings = app.settings
    if settings.callback_secret or settings.callback_public_key or settings.callback_allow_unsigned:
        callbacks = create_callback_app(
            app.db, app.dispatcher, callback_config(settings), clock=app.clock
        )
        asgi.router.routes.extend(callbacks.routes)  # /callbacks/gateway, /callbacks/health

    @asgi.get("/", include_in_schema=False)
    def _home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    return asgi


def _console(app: App, tokens: TokenConfig) -> Starlette:
    """The operators' console: logged in with the same tokens as the admin API."""

    def console_login(token: str) -> Operator | None:
        principal = tokens.authenticate(token)
        return None if principal is None else Operator(principal.name, principal.role.value)

    def console_owner(fingerprint: str) -> Operator | None:
        principal = tokens.by_fingerprint(fingerprint)
        return None if principal is None else Operator(principal.name, principal.role.value)

    secret = app.settings.console_session_secret
    if secret is None:
        log.info("console: no BILLING_CONSOLE_SESSION_SECRET; sessions end when the app restarts")
    return create_console_app(
        ConsoleDeps(
            db=app.db,
            app=app,
            clock=app.clock,
            session_clock=system_clock,
            authenticate=console_login,
            owner=console_owner,
            display_timezone=app.settings.console_timezone,
        ),
        session_secret=secret.get_secret_value() if secret else secrets.token_urlsafe(32),
        https_only=app.settings.console_https_only,
        root_path="/console",
    )
