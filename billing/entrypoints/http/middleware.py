"""Pure ASGI middleware for the admin API, the console and the callbacks: security headers
and a request body size limit.

* :class:`SecurityHeaders` adds Content-Security-Policy (``frame-ancestors 'none'``),
  X-Frame-Options DENY, X-Content-Type-Options nosniff, Referrer-Policy no-referrer and
  Cache-Control no-store to every HTTP answer that does not set its own.
* :class:`BodyLimit` refuses a body larger than ``max_bytes`` with 413 before the app (and so
  before authentication) sees it: at once from Content-Length, or, for a chunked body, as
  soon as the bytes received pass the limit.

Never: buffer a body, read more than the limit, or let an oversized body reach a handler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

#: Pages and answers: only our own resources, never framed, no plugins.
STRICT_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The interactive docs: Swagger UI from our own origin (no CDN, no inline script); its
#: stylesheet sets inline styles.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer for ``path`` carries (pure)."""
    csp = DOCS_CSP if path in DOCS_PATHS else STRICT_CSP
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    ]


def declared_too_large(headers: list[tuple[bytes, bytes]], max_bytes: int) -> bool:
    """Whether a Content-Length header announces more than ``max_bytes`` (pure).

    An unreadable or repeated-and-different Content-Length counts as too large: the body
    cannot be trusted to stop where it says.
    """
    values = {value.strip() for name, value in headers if name.lower() == b"content-length"}
    if not values:
        return False
    if len(values) > 1:
        return True
    (value,) = values
    return not value.isdigit() or int(value) > max_bytes


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(str(scope.get("path", "")))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit. An HTTPException, so
    the framework's own exception handling answers 413 if the app catches it first."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_message(max_bytes))


def _too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than {max_bytes} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(list(scope.get("headers", [])), self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if started:  # the app answered before reading it all: nothing more to say
                return
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"error": "too_large", "message": _too_large_message(self.max_bytes)}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install(app: Any, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Add both to a Starlette/FastAPI app: the size limit runs before anything else of the
    app; the headers are added to every answer, the 413 included."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)


def middleware(*, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> list[Middleware]:
    """Both, for ``Starlette(middleware=...)`` (the first listed is the outermost)."""
    return [Middleware(SecurityHeaders), Middleware(BodyLimit, max_bytes=max_body_bytes)]
