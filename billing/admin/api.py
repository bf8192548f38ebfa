"""The admin HTTP API (FastAPI) for operators and the SaaS backend.

``create_admin_app(app, tokens)`` builds it from the composition root's
:class:`workers.app.App`; ``billing admin serve`` runs it under uvicorn (no access log).
OpenAPI is at ``/openapi.json``, the interactive docs at ``/docs``.

* Auth: ``Authorization: Bearer <token>`` (see :mod:`billing.admin.auth`): no or unknown
  token → 401, a role not allowed here → 403. Every change is recorded in the audit log
  with the token's name as the actor and the request's ``reason``.
* Errors are JSON ``{"error": code, "message": text}``: invalid input 422 (naming the
  field), not found 404, not allowed in the current state 409 (``charging_paused`` too),
  database or broker unavailable 503.
* ``POST /api/subscriptions`` and ``POST /api/attempts/{id}/refund`` take an
  ``Idempotency-Key`` header (required for refunds): the same key and body get the first
  answer again (``Idempotent-Replayed: true``); the same key with another body gets 409.
* Endpoints are plain ``def``: FastAPI runs them in its threadpool (sync SQLAlchemy).
"""

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime
from starlette.exceptions import HTTPException

from billing import __version__
from billing.admin import schemas
from billing.admin.auth import (
    LIFECYCLE_ROLES,
    MONEY_ROLES,
    READ_ROLES,
    Principal,
    Role,
    TokenConfig,
)
from billing.callbacks import callback_config, create_callback_app
from billing.console import ConsoleDeps, Operator, create_console_app
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
from billing.services.operations import Operations
from billing.services.subscriptions import NewSubscription

if TYPE_CHECKING:
    from workers.app import App

log = logging.getLogger("billing.admin")

Id = Annotated[int, Path(ge=1)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorOut} for code in (401, 403, 404, 409, 422, 503)
}


_bearer = HTTPBearer(auto_error=False, description="A token from BILLING_ADMIN_TOKENS")


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    tokens: TokenConfig = request.app.state.tokens
    who = tokens.authenticate(credentials.credentials if credentials else None)
    if who is None:
        raise HTTPException(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return who


def _allow(roles: frozenset[Role]) -> Callable[[Principal], Principal]:
    def check(who: Annotated[Principal, Depends(_principal)]) -> Principal:
        if who.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise HTTPException(403, f"role {who.role} may not do this (needs {allowed})")
        return who

    return check


#: Any valid token; operator or backend; operator only.
Reader = Annotated[Principal, Depends(_allow(READ_ROLES))]
Lifecycle = Annotated[Principal, Depends(_allow(LIFECYCLE_ROLES))]
Money = Annotated[Principal, Depends(_allow(MONEY_ROLES))]


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


def create_admin_app(
    app: "App", tokens: TokenConfig, *, operations: Operations | None = None
) -> FastAPI:
    """Build the admin API. Raises ConfigurationError when no token is configured."""
    if not tokens:
        raise ConfigurationError(
            "BILLING_ADMIN_TOKENS is not set: the admin API needs at least one "
            "name:role:token entry"
        )
    ops = operations or Operations(
        app.db,
        gateway=app.gateway,
        policy=app.policy,
        dispatcher=app.dispatcher,
        clock=app.clock,
    )
    api = FastAPI(
        title="billing admin API",
        version=__version__,
        description="Operators and the SaaS backend: subscriptions, invoices, retries, "
        "refunds, status and the audit log. Bearer tokens; every change needs a reason.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.tokens = tokens

    # -- errors ---------------------------------------------------------------------------------

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
        return JSONResponse(
            {"error": codes.get(exc.status_code, "http_error"), "message": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    # -- subscriptions --------------------------------------------------------------------------

    @api.get("/api/health", tags=["status"])
    def health() -> dict[str, str]:
        """Liveness (no token needed; touches nothing)."""
        return {"status": "ok"}

    @api.post(
        "/api/subscriptions",
        status_code=201,
        response_model=schemas.SubscriptionOut,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def create_subscription(
        body: schemas.CreateSubscription,
        who: Lifecycle,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> dict[str, Any]:
        """Create a subscription (the first charge at `start_at` or the next scheduled run)."""
        stored = ops.create_subscription(
            NewSubscription(
                customer_id=body.customer_id,
                binding_id=body.binding_id,
                amount=body.amount,
                schedule=body.schedule,
                currency=body.currency,
                timezone=body.timezone,
                description=body.description,
                start_at=body.start_at,
            ),
            actor=who.name,
            reason=body.reason,
            idempotency_key=idempotency_key,
        )
        if stored.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return stored.body

    @api.get(
        "/api/subscriptions",
        response_model=list[schemas.SubscriptionOut],
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def list_subscriptions(
        _who: Reader,
        status: str | None = None,
        customer_id: str | None = None,
        failure: Annotated[
            str | None, Query(description="open invoice's last failure: category or reason")
        ] = None,
        failing_since: Annotated[
            AwareDatetime | None, Query(description="started failing at or after (ISO 8601)")
        ] = None,
        failing_before: Annotated[
            AwareDatetime | None, Query(description="started failing at or before (ISO 8601)")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        return ops.list_subscriptions(
            status=status,
            customer_id=customer_id,
            failure=failure,
            failing_since=failing_since,
            failing_before=failing_before,
            limit=limit,
            offset=offset,
        )

    @api.get(
        "/api/subscriptions/{subscription_id}",
        response_model=schemas.SubscriptionDetail,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def show_subscription(subscription_id: Id, _who: Reader) -> dict[str, Any]:
        """With its invoices, attempts, refunds, events and the dunning timeline in words."""
        return ops.show_subscription(subscription_id)

    @api.patch(
        "/api/subscriptions/{subscription_id}",
        response_model=schemas.SubscriptionOut,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def update_subscription(
        subscription_id: Id, body: schemas.UpdateSubscription, who: Lifecycle
    ) -> dict[str, Any]:
        return ops.update_subscription(
            subscription_id,
            actor=who.name,
            reason=body.reason,
            amount=body.amount,
            schedule=body.schedule,
            timezone=body.timezone,
            description=body.description,
            currency=body.currency,
        )

    @api.post(
        "/api/subscriptions/{subscription_id}/binding",
        response_model=schemas.SubscriptionOut,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def set_binding(
        subscription_id: Id, body: schemas.SetBinding, who: Lifecycle
    ) -> dict[str, Any]:
        """A new card: a subscription waiting for one is retried at once."""
        return ops.set_binding(subscription_id, body.binding_id, actor=who.name, reason=body.reason)

    @api.post(
        "/api/subscriptions/{subscription_id}/pause",
        response_model=schemas.SubscriptionChange,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def pause(subscription_id: Id, body: schemas.ReasonOnly, who: Lifecycle) -> dict[str, Any]:
        """No new invoices and no charges until resumed."""
        return ops.pause(subscription_id, actor=who.name, reason=body.reason)

    @api.post(
        "/api/subscriptions/{subscription_id}/resume",
        response_model=schemas.SubscriptionChange,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def resume(subscription_id: Id, body: schemas.ReasonOnly, who: Lifecycle) -> dict[str, Any]:
        """Undo a pause (paused periods are not billed) or a cancellation at period end."""
        return ops.resume(subscription_id, actor=who.name, reason=body.reason)

    @api.post(
        "/api/subscriptions/{subscription_id}/cancel",
        response_model=schemas.SubscriptionChange,
        responses=_ERRORS,
        tags=["subscriptions"],
    )
    def cancel(subscription_id: Id, body: schemas.Cancel, who: Lifecycle) -> dict[str, Any]:
        return ops.cancel(
            subscription_id, actor=who.name, reason=body.reason, at_period_end=body.at_period_end
        )

    # -- retries --------------------------------------------------------------------------------

    @api.post(
        "/api/subscriptions/{subscription_id}/retry",
        response_model=schemas.RetryOut,
        responses=_ERRORS,
        tags=["retries"],
    )
    def retry(subscription_id: Id, body: schemas.ReasonOnly, who: Money) -> dict[str, Any]:
        """Charge the oldest open invoice now. Does not use up a dunning step."""
        return ops.retry(subscription_id, actor=who.name, reason=body.reason)

    @api.post(
        "/api/retries/bulk",
        response_model=schemas.BulkRetryOut,
        responses=_ERRORS,
        tags=["retries"],
    )
    def bulk_retry(body: schemas.BulkRetry, who: Money) -> dict[str, Any]:
        """Retry every active or past_due subscription whose open invoice last failed so."""
        return ops.bulk_retry(
            body.failure, actor=who.name, reason=body.reason, dry_run=body.dry_run
        )

    # -- invoices and payments ------------------------------------------------------------------

    @api.get(
        "/api/invoices",
        response_model=list[schemas.InvoiceOut],
        responses=_ERRORS,
        tags=["invoices"],
    )
    def list_invoices(
        _who: Reader,
        status: str | None = None,
        subscription_id: Annotated[int | None, Query(ge=1)] = None,
        failure: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        return ops.list_invoices(
            status=status,
            subscription_id=subscription_id,
            failure=failure,
            limit=limit,
            offset=offset,
        )

    @api.get(
        "/api/invoices/{invoice_id}",
        response_model=schemas.InvoiceDetail,
        responses=_ERRORS,
        tags=["invoices"],
    )
    def show_invoice(invoice_id: Id, _who: Reader) -> dict[str, Any]:
        return ops.show_invoice(invoice_id)

    @api.post(
        "/api/invoices/{invoice_id}/void",
        response_model=schemas.InvoiceOut,
        responses=_ERRORS,
        tags=["invoices"],
    )
    def void_invoice(invoice_id: Id, body: schemas.ReasonOnly, who: Money) -> dict[str, Any]:
        """Nobody owes it. Refused for paid invoices and while a charge is in flight."""
        return ops.void_invoice(invoice_id, actor=who.name, reason=body.reason)

    @api.post(
        "/api/invoices/{invoice_id}/write-off",
        response_model=schemas.InvoiceOut,
        responses=_ERRORS,
        tags=["invoices"],
    )
    def write_off_invoice(invoice_id: Id, body: schemas.ReasonOnly, who: Money) -> dict[str, Any]:
        """Owed but not collectable: uncollectible. Refused like void."""
        return ops.write_off_invoice(invoice_id, actor=who.name, reason=body.reason)

    @api.post(
        "/api/attempts/{attempt_id}/refund",
        response_model=schemas.RefundOut,
        responses=_ERRORS,
        tags=["payments"],
    )
    def refund(
        attempt_id: Id,
        body: schemas.RefundRequest,
        who: Money,
        response: Response,
        idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
    ) -> dict[str, Any]:
        """Refund (part of) a paid attempt via refund.do. `state` says what is known:
        `unknown` means the gateway did not answer and the refund may or may not have
        happened — check before trying again."""
        stored = ops.refund(
            attempt_id=attempt_id,
            amount=body.amount,
            actor=who.name,
            reason=body.reason,
            idempotency_key=idempotency_key,
        )
        if stored.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return stored.body

    @api.post(
        "/api/attempts/{attempt_id}/reverse",
        response_model=schemas.RefundOut,
        responses=_ERRORS,
        tags=["payments"],
    )
    def reverse(attempt_id: Id, body: schemas.ReasonOnly, who: Money) -> dict[str, Any]:
        """Cancel a payment made today (UTC) via reverse.do; later days need a refund."""
        return ops.reverse(attempt_id, actor=who.name, reason=body.reason)

    # -- status and audit -----------------------------------------------------------------------

    @api.get("/api/status", responses=_ERRORS, tags=["status"])
    def status(_who: Reader) -> dict[str, Any]:
        """Is charging running (circuit breaker); counts by status; what needs a person."""
        return ops.status()

    @api.get(
        "/api/audit",
        response_model=list[schemas.EventOut],
        responses=_ERRORS,
        tags=["status"],
    )
    def audit(
        _who: Reader,
        limit: Limit = 100,
        before_id: Annotated[int | None, Query(ge=1)] = None,
        subscription_id: Annotated[int | None, Query(ge=1)] = None,
    ) -> list[dict[str, Any]]:
        """Changes made by people and the backend, newest first (page with before_id)."""
        return ops.audit(limit=limit, before_id=before_id, subscription_id=subscription_id)

    # -- the operators' web console, served by the same app ---------------------------------

    def console_login(token: str) -> Operator | None:
        principal = tokens.authenticate(token)
        return None if principal is None else Operator(principal.name, principal.role.value)

    secret = app.settings.console_session_secret
    if secret is None:
        log.info("console: no BILLING_CONSOLE_SESSION_SECRET; sessions end when the app restarts")
    console = create_console_app(
        ConsoleDeps(
            db=app.db,
            operations=ops,
            clock=app.clock,
            authenticate=console_login,
            display_timezone=app.settings.console_timezone,
        ),
        session_secret=secret.get_secret_value() if secret else secrets.token_urlsafe(32),
        https_only=app.settings.console_https_only,
        root_path="/console",
    )
    api.mount("/console", console)

    # -- the gateway's callbacks, when a key (or unsigned callbacks) is configured ----------
    settings = app.settings
    if (
        settings.callback_secret
        or settings.callback_public_key
        or (settings.callback_allow_unsigned)
    ):
        callbacks = create_callback_app(
            app.db, app.dispatcher, callback_config(settings), clock=app.clock
        )
        api.router.routes.extend(callbacks.routes)  # /callbacks/gateway, /callbacks/health

    @api.get("/", include_in_schema=False)
    def _home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    return api
