"""The admin HTTP API (FastAPI) for operators and the SaaS backend.

``create_admin_app(app, tokens)`` builds it from the composition root's
:class:`billing.bootstrap.App`: the error answers, the token table and the routers of
:mod:`.subscriptions`, :mod:`.money` and :mod:`.system`. ``billing admin serve`` runs it
inside :mod:`billing.entrypoints.http.asgi` (with the console and the callbacks) under
uvicorn (no access log). OpenAPI is at ``/openapi.json``, the interactive docs at ``/docs``.

* Auth: ``Authorization: Bearer <token>`` (see :mod:`billing.auth_tokens`): no or unknown
  token → 401, a role not allowed here → 403. Every change is recorded in the audit log
  with the token's name as the actor and the request's ``reason``.
* Errors are JSON ``{"error": code, "message": text}``: invalid input 422 (naming the
  field), not found 404, not allowed in the current state 409 (``charging_paused`` too),
  database or broker unavailable 503.
* ``POST /api/subscriptions`` and ``POST /api/attempts/{id}/refund`` take an
  ``Idempotency-Key`` header (required for refunds): the same key and body get the first
  answer again (``Idempotent-Replayed: true``); the same key with another body gets 409.
* Endpoints are plain ``def``: FastAPI runs them in its threadpool (sync SQLAlchemy).

This module never decides anything about money: it maps errors to answers and wires the
routers, whose routes each call one use case.
"""

import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from billing import __version__
from billing.auth_tokens import TokenConfig
from billing.entrypoints.http.admin import clock, events, money, subscriptions, system, webhooks
from billing.entrypoints.http.admin.docs import install_docs
from billing.entrypoints.http.health import health_routes, metrics_route
from billing.entrypoints.http.middleware import install as install_middleware
from billing.errors import (
    BillingError,
    BrokerError,
    ConfigurationError,
    ConflictError,
    GatewayError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from billing.queue.metrics import QueueGauges
from billing.services.read.gauges import DatabaseGauges

if TYPE_CHECKING:
    from billing.bootstrap import App

log = logging.getLogger("billing.admin")


def _status_for(exc: BillingError) -> int:
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):  # ChargingPausedError included
        return 409
    if isinstance(exc, StorageError | BrokerError):
        return 503
    if isinstance(exc, GatewayError):
        return 502
    return 500


def _field_errors(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    fields = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        where = location[0] if location else ""
        name = ".".join(location[1:]) or where
        fields.append({"field": name, "in": where, "message": error.get("msg", "invalid")})
    first = fields[0] if fields else {"field": "request", "message": "invalid"}
    return f"{first['field']}: {first['message']}", fields


def create_admin_app(app: "App", tokens: TokenConfig) -> FastAPI:
    """Build the admin API. Raises ConfigurationError when no token is configured."""
    if not tokens:
        raise ConfigurationError(
            "BILLING_ADMIN_TOKENS is not set: the admin API needs at least one "
            "name:role:token entry"
        )
    api = FastAPI(
        title="billing admin API",
        version=__version__,
        description="Operators and the SaaS backend: subscriptions, invoices, retries, "
        "refunds, status and the audit log. Bearer tokens; every change needs a reason.",
        openapi_url="/openapi.json",
        docs_url=None,  # served from the package's own files: see install_docs
        redoc_url=None,
        # Operation ids are the route functions' names: a generated client gets
        # create_subscription(), refund(), … and they do not change with the paths.
        generate_unique_id_function=lambda route: route.name,
    )
    api.state.tokens = tokens
    api.state.services = app
    install_middleware(api, max_body_bytes=app.settings.max_request_bytes)
    install_docs(api, title=api.title)
    _handle_errors(api)

    @api.get("/api/health", tags=["status"])
    def health() -> dict[str, str]:
        """Liveness (no token needed; touches nothing)."""
        return {"status": "ok"}

    api.router.routes.extend(health_routes(app.db, app.settings.redis_url))
    api.router.routes.append(
        metrics_route(
            [
                DatabaseGauges(app.db, clock=app.clock),
                QueueGauges(app.broker, app.settings.queue_name),
            ]
        )
    )
    for router in (
        subscriptions.subscriptions,
        money.retries,
        money.invoices,
        money.payments,
        system.system,
        events.events,
        webhooks.webhooks,
        clock.clock,
    ):
        api.include_router(router)
    return api


def _handle_errors(api: FastAPI) -> None:
    """Every error answers JSON ``{"error": code, "message": text}``."""

    @api.exception_handler(BillingError)
    def _billing_error(_request: Request, exc: BillingError) -> JSONResponse:
        status = _status_for(exc)
        if status >= 500:
            log.warning("admin API: %s: %s", type(exc).__name__, exc)
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=status)

    @api.exception_handler(RequestValidationError)
    def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, fields = _field_errors(exc)
        return JSONResponse(
            {"error": "invalid_input", "message": message, "fields": fields}, status_code=422
        )

    @api.exception_handler(HTTPException)
    def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_allowed"}
        codes[413] = "too_large"
        return JSONResponse(
            {"error": codes.get(exc.status_code, "http_error"), "message": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )
