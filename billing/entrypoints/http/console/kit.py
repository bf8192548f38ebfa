"""What every console page and form shares: who is logged in (checked server-side on every
request), the CSRF token, the one display time zone, the charging-paused banner, paging,
and the "one action, one line of feedback" form handler.

It decides how a request becomes a page (login required, CSRF checked, operators only for
actions, bad form text refused before any use case sees it). It must never decide anything
about money, and never put a token in the cookie or a page.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from billing.entrypoints.http.console.sessions import SessionStore, session_verdict
from billing.errors import BillingError, ValidationError
from billing.services.ports import Clock
from billing.services.read.attention import charging_banner
from billing.storage.database import Database

if TYPE_CHECKING:
    from billing.bootstrap import App

log = logging.getLogger("billing.entrypoints.http.console")
TEMPLATES = Path(__file__).parent / "templates"
CONSOLE_ROLES = frozenset({"viewer", "operator"})
MAX_ID = 2**63 - 1
PAGE_SIZE = 50
CURRENCY_SYMBOLS = {"643": "RUB", "840": "USD", "978": "EUR"}

Handler = Callable[[Request, "Operator"], Awaitable[Response]]

#: A form's use case: (operator, form, target id) -> one line of feedback.
FormAction = Callable[["Operator", dict[str, Any], int], str]


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
    #: What login sessions expire by: the wall clock, even when ``clock`` is the test clock
    #: (moving it a month must not log the operator out). None: ``clock``.
    session_clock: Clock | None = None

    def session_now(self) -> datetime:
        return (self.session_clock or self.clock)()


def form_problem(form: dict[str, Any]) -> str | None:
    """A form field no use case may see (a NUL byte: PostgreSQL refuses them), or None."""
    for name, value in form.items():
        if isinstance(value, str) and "\x00" in value:
            return f"{name} must not contain NUL (0x00) bytes"
    return None


def page_number(request: Request) -> int:
    """``?page=N`` (1-based); anything else is the first page."""
    raw = request.query_params.get("page", "1")
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else 1
    return max(1, number)


class Kit:
    """The console's shared machinery, built once per app."""

    def __init__(self, deps: ConsoleDeps, root_path: str) -> None:
        self.deps = deps
        self.root_path = root_path
        self.store = SessionStore(deps.db)
        self.zone = ZoneInfo(deps.display_timezone)
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.filters["local"] = self.local
        self.templates.env.filters["money"] = money

    def local(self, value: datetime | str | None) -> str:
        """Every time on every page in the console's one zone (named in the header)."""
        if value is None:
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.astimezone(self.zone).strftime("%d %b %Y %H:%M %Z")

    def current(self, request: Request) -> Operator | None:
        found = getattr(request.state, "operator", None)
        return found if isinstance(found, Operator) else None

    async def check_session(self, request: Request) -> Operator | None:
        """The person behind the cookie, checked against the server-side record."""
        session_id = request.session.get("sid")
        if not isinstance(session_id, str):
            return None
        record = await run_in_threadpool(self.store.find, session_id)
        verdict = session_verdict(record, self.deps.session_now(), self.deps.owner)
        if isinstance(verdict, str) or verdict.role not in CONSOLE_ROLES:
            why = verdict if isinstance(verdict, str) else "role may not use the console"
            log.info("console: session refused (%s)", why)
            request.session.clear()
            return None
        request.state.operator = verdict
        return verdict

    def csrf_token(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    async def csrf_ok(self, request: Request) -> dict[str, Any] | None:
        form = dict(await request.form())
        sent = form.get("csrf")
        expected = request.session.get("csrf")
        if not isinstance(sent, str) or not isinstance(expected, str):
            return None
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        return form

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.update(
            operator=self.current(request),
            csrf=self.csrf_token(request),
            flash=request.session.pop("flash", None),
            base=self.root_path,
            zone=self.deps.display_timezone,
            paused=getattr(request.state, "paused", None),
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def to(self, path: str) -> RedirectResponse:
        return RedirectResponse(f"{self.root_path}{path}", status_code=303)

    def not_found(self, request: Request, message: str) -> Response:
        return self.page(request, "error.html", 404, message=message)

    def login_required(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            operator = await self.check_session(request)
            if operator is None:
                return self.to("/login")
            request.state.paused = await run_in_threadpool(charging_banner, self.deps.db)
            return await handler(request, operator)

        return wrapped

    async def checked_form(self, request: Request, operator: Operator) -> dict[str, Any] | Response:
        """The form of an operator's POST (CSRF checked, NUL bytes refused), or the page
        that refuses it."""
        form = await self.csrf_ok(request)
        if form is None:
            return self.page(request, "error.html", 403, message="The form expired; reload it.")
        if not operator.can_act:
            return self.page(request, "error.html", 403, message="Viewers cannot act.")
        return form

    def action_routes(self, table: Iterable[tuple[str, FormAction]]) -> list[Route]:
        """One POST route per ``(path, run)`` of a resource's forms, each through
        :meth:`action`."""
        return [Route(path, self.action(run), methods=["POST"]) for path, run in table]

    def action(self, run: FormAction) -> Callable[[Request], Awaitable[Response]]:
        """A POST from a form: CSRF checked, operators only, one line of feedback. A route
        without ``{target}`` passes 0."""

        async def handler(request: Request, operator: Operator) -> Response:
            target = int(request.path_params.get("target", 0))
            form = await self.checked_form(request, operator)
            if isinstance(form, Response):
                return form
            try:
                if target > MAX_ID:
                    raise ValidationError(f"{target} is not an id")
                problem = form_problem(form)
                if problem:
                    raise ValidationError(problem)
                request.session["flash"] = await run_in_threadpool(run, operator, form, target)
            except BillingError as exc:
                request.session["flash"] = f"Not done: {exc}"
            back = str(form.get("back") or "/")
            safe_back = back.startswith("/") and not back.startswith("//") and "\x00" not in back
            return self.to(back if safe_back else "/")

        return self.login_required(handler)


def money(amount: int | None, currency: str = "643") -> str:
    if amount is None:
        return "—"
    return f"{amount / 100:,.2f} {CURRENCY_SYMBOLS.get(currency, currency)}"


def reason(form: dict[str, Any], default: str) -> str:
    return str(form.get("reason") or "").strip() or default
