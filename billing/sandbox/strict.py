"""The sandbox's strict dialect mode: refuse a request the way the real router would when
it comes in the wrong encoding (HTTP 415) or at the wrong path (HTTP 404, by routing).

With ``--dialect rbs`` the sandbox serves ``/payment/rest/<method>.do`` and takes form
bodies except JSON for ``recurrentPayment.do``; with ``--dialect all2pay`` it serves
``/v1/<method>.do`` and takes JSON only (:mod:`billing.domain.dialects` is the table).
Without a dialect it is lenient: one base path, any encoding. It decides refusals only;
it never keeps or changes an order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from billing.domain.dialects import Dialect, Encoding, route
from billing.sandbox.answers import now_ms

Handler = Callable[[Request], Awaitable[Response]]

_CONTENT_TYPES = {
    Encoding.JSON: "application/json",
    Encoding.FORM: "application/x-www-form-urlencoded",
}


def wrong_encoding(dialect: Dialect, method: str, request: Request) -> Response | None:
    """HTTP 415 (plain text, like a router's error page) when the request's body is not
    encoded as ``dialect`` expects for ``method``; else None."""
    expected = _CONTENT_TYPES[route(dialect, method).encoding]
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given == expected:
        return None
    return PlainTextResponse(
        f"415 Unsupported Media Type: {method} takes {expected} in the {dialect.value} "
        f"dialect, not {given or 'no body'}",
        status_code=415,
    )


def strict(dialect: Dialect | None, method: str, handler: Handler) -> Handler:
    """``handler`` refusing a wrongly encoded request first, in strict mode."""
    if dialect is None:
        return handler

    async def checked(request: Request) -> Response:
        refused = wrong_encoding(dialect, method, request)
        if refused is not None:
            request.app.state.sandbox.ledger.record_request(f"refused:{method}", now_ms())
            return refused
        return await handler(request)

    return checked
