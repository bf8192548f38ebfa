"""Console pages (Starlette + Jinja). Log in with an operator or viewer token; the session
is a signed, HttpOnly, SameSite=strict (and, unless turned off for local use, Secure) cookie
holding a random session id; every form carries a CSRF token.

Every request re-checks the session server-side
(:mod:`billing.entrypoints.http.console.sessions`): a logged-out session, one past its
fixed lifetime, or one whose token was removed from the settings is refused. The cookie
never holds a token."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from billing.domain.subscription import parse_amount
from billing.entrypoints.http.console.sessions import SessionStore, session_verdict
from billing.errors import BillingError, NotFoundError
from billing.services.ports import Clock

if TYPE_CHECKING:
    from billing.bootstrap import App
from billing.services.read.dashboard import audit_log, dashboard, failing_subscriptions
from billing.storage.database import Database

log = logging.getLogger("billing.entrypoints.http.console")
TEMPLATES = Path(__file__).parent / "templates"
CONSOLE_ROLES = frozenset({"viewer", "operator"})


@dataclass(frozen=True)
class Operator:
    name: str
    role: str  # viewer | operator | backend

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class ConsoleDeps:
    db: Database
    #: The operators' use cases (retry, pause, cancel, void, refund…), each audited.
    app: App
    clock: Clock
    #: token → who it belongs to (constant-time comparison is the caller's job), or None.
    authenticate: Callable[[str], Operator | None]
    #: token fingerprint (:func:`billing.auth_tokens.token_fingerprint`) → who its configured
    #: token belongs to now, or None once the token is gone from the settings.
    owner: Callable[[str], Operator | None]
    display_timezone: str = "Europe/Moscow"


def create_console_app(
    deps: ConsoleDeps, *, session_secret: str, https_only: bool = True, root_path: str = ""
) -> Starlette:
    store = SessionStore(deps.db)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    zone = ZoneInfo(deps.display_timezone)

    def local(value: datetime | str | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.astimezone(zone).strftime("%d %b %Y %H:%M %Z")

    def money(amount: int | None, currency: str = "643") -> str:
        if amount is None:
            return "—"
        symbol = {"643": "RUB", "840": "USD", "978": "EUR"}.get(currency, currency)
        return f"{amount / 100:,.2f} {symbol}"

    templates.env.filters["local"] = local
    templates.env.filters["money"] = money

    def current(request: Request) -> Operator | None:
        found = getattr(request.state, "operator", None)
        return found if isinstance(found, Operator) else None

    async def check_session(request: Request) -> Operator | None:
        """The person behind the cookie, checked against the server-side record."""
        session_id = request.session.get("sid")
        if not isinstance(session_id, str):
            return None
        record = await run_in_threadpool(store.find, session_id)
        verdict = session_verdict(record, deps.clock(), deps.owner)
        if isinstance(verdict, str) or verdict.role not in CONSOLE_ROLES:
            why = verdict if isinstance(verdict, str) else "role may not use the console"
            log.info("console: session refused (%s)", why)
            request.session.clear()
            return None
        request.state.operator = verdict
        return verdict

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    async def csrf_ok(request: Request) -> dict[str, Any] | None:
        form = dict(await request.form())
        sent = form.get("csrf")
        expected = request.session.get("csrf")
        if not isinstance(sent, str) or not isinstance(expected, str):
            return None
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        return form

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.update(
            operator=current(request),
            csrf=csrf_token(request),
            flash=request.session.pop("flash", None),
            base=root_path,
        )
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def to(path: str) -> RedirectResponse:
        return RedirectResponse(f"{root_path}{path}", status_code=303)

    def login_required(
        handler: Callable[[Request, Operator], Any],
    ) -> Callable[[Request], Any]:
        async def wrapped(request: Request) -> Response:
            operator = await check_session(request)
            if operator is None:
                return to("/login")
            result: Response = await handler(request, operator)
            return result

        return wrapped

    async def login_form(request: Request) -> Response:
        return page(request, "login.html")

    async def login(request: Request) -> Response:
        form = await csrf_ok(request)
        if form is None:
            return page(request, "login.html", 403, error="The form expired; try again.")
        token = str(form.get("token", ""))
        operator = deps.authenticate(token) if token else None
        if operator is None or operator.role not in CONSOLE_ROLES:
            log.warning(
                "console: failed login from %s", request.client.host if request.client else "?"
            )
            return page(request, "login.html", 401, error="That token is not valid here.")
        session_id = await run_in_threadpool(
            lambda: store.open(
                deps.clock(), operator=operator.name, role=operator.role, token=token
            )
        )
        request.session.clear()
        request.session["sid"] = session_id
        request.session["csrf"] = secrets.token_urlsafe(32)
        log.info("console: %s (%s) logged in", operator.name, operator.role)
        return to("/")

    async def logout(request: Request) -> Response:
        if await csrf_ok(request) is not None:
            session_id = request.session.get("sid")
            if isinstance(session_id, str):
                await run_in_threadpool(store.revoke, session_id, deps.clock())
            request.session.clear()
        return to("/login")

    @login_required
    async def home(request: Request, operator: Operator) -> Response:
        data = await run_in_threadpool(
            dashboard, deps.db, deps.clock(), timezone=deps.display_timezone
        )
        return page(request, "dashboard.html", data=data)

    @login_required
    async def failing(request: Request, operator: Operator) -> Response:
        rows = await run_in_threadpool(failing_subscriptions, deps.db)
        return page(request, "failing.html", rows=rows)

    @login_required
    async def subscription(request: Request, operator: Operator) -> Response:
        sub_id = int(request.path_params["sub_id"])
        try:
            view = await run_in_threadpool(deps.app.read.show_subscription, sub_id)
        except NotFoundError as exc:
            return page(request, "error.html", 404, message=str(exc))
        return page(request, "subscription.html", sub=view, nonce=secrets.token_urlsafe(16))

    def action(
        run: Callable[[Operator, dict[str, Any], int], str],
    ) -> Callable[[Request], Any]:
        """A POST from a form: CSRF checked, operators only, one line of feedback."""

        @login_required
        async def handler(request: Request, operator: Operator) -> Response:
            target = int(request.path_params["target"])
            form = await csrf_ok(request)
            if form is None:
                return page(request, "error.html", 403, message="The form expired; reload it.")
            if not operator.can_act:
                return page(request, "error.html", 403, message="Viewers cannot act.")
            try:
                request.session["flash"] = await run_in_threadpool(run, operator, form, target)
            except BillingError as exc:
                request.session["flash"] = f"Not done: {exc}"
            back = str(form.get("back") or "/")
            return to(back if back.startswith("/") and not back.startswith("//") else "/")

        return handler

    def reason(form: dict[str, Any], default: str) -> str:
        return str(form.get("reason") or "").strip() or default

    def retry(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        why = reason(form, "retried from the console")
        result = deps.app.actions.retries.retry(sub_id, actor=operator.name, reason=why)
        return f"Retry of invoice {result['invoice_id']} sent (order {result['order_number']})."

    def pause(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        deps.app.actions.pausing.pause(sub_id, actor=operator.name, reason=reason(form, ""))
        return f"Subscription {sub_id} paused."

    def resume(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        deps.app.actions.pausing.resume(sub_id, actor=operator.name, reason=reason(form, ""))
        return f"Subscription {sub_id} resumed."

    def cancel(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        at_end = form.get("when") == "period_end"
        deps.app.actions.pausing.cancel(
            sub_id, actor=operator.name, reason=reason(form, ""), at_period_end=at_end
        )
        return f"Subscription {sub_id} " + (
            "will be canceled at the end of its period." if at_end else "canceled."
        )

    def void(operator: Operator, form: dict[str, Any], invoice_id: int) -> str:
        deps.app.actions.invoices.void(invoice_id, actor=operator.name, reason=reason(form, ""))
        return f"Invoice {invoice_id} voided."

    def write_off(operator: Operator, form: dict[str, Any], invoice_id: int) -> str:
        deps.app.actions.invoices.write_off(
            invoice_id, actor=operator.name, reason=reason(form, "")
        )
        return f"Invoice {invoice_id} written off."

    def refund(operator: Operator, form: dict[str, Any], attempt_id: int) -> str:
        raw = str(form.get("amount") or "").strip()
        amount = parse_amount(raw) if raw else None
        stored = deps.app.actions.refunds.refund(
            actor=operator.name,
            reason=reason(form, ""),
            attempt_id=attempt_id,
            amount=amount,
            # One key per rendered form: a double click refunds once.
            idempotency_key=str(form.get("nonce") or "") or None,
        )
        state = stored.body.get("state", "requested")
        return f"Refund of attempt {attempt_id}: {state}."

    def resolve(operator: Operator, form: dict[str, Any], attempt_id: int) -> str:
        done = deps.app.actions.resolve.resolve(
            attempt_id, actor=operator.name, reason=reason(form, "")
        )
        return f"Attempt {attempt_id} resolved: {done['message']}"

    @login_required
    async def audit(request: Request, operator: Operator) -> Response:
        people_only = request.query_params.get("all") != "1"
        rows = await run_in_threadpool(audit_log, deps.db, people_only=people_only)
        return page(request, "audit.html", rows=rows, people_only=people_only)

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home),
        Route("/failing", failing),
        Route("/subscriptions/{sub_id:int}", subscription),
        Route("/subscriptions/{target:int}/retry", action(retry), methods=["POST"]),
        Route("/subscriptions/{target:int}/pause", action(pause), methods=["POST"]),
        Route("/subscriptions/{target:int}/resume", action(resume), methods=["POST"]),
        Route("/subscriptions/{target:int}/cancel", action(cancel), methods=["POST"]),
        Route("/invoices/{target:int}/void", action(void), methods=["POST"]),
        Route("/invoices/{target:int}/write-off", action(write_off), methods=["POST"]),
        Route("/attempts/{target:int}/refund", action(refund), methods=["POST"]),
        Route("/attempts/{target:int}/resolve", action(resolve), methods=["POST"]),
        Route("/audit", audit),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=session_secret,
            session_cookie="billing_console",
            same_site="strict",
            https_only=https_only,
            max_age=int(store.lifetime.total_seconds()),
        )
    ]
    return Starlette(routes=routes, middleware=middleware)
