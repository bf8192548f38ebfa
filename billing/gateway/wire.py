"""How the gateway client talks on the wire: a parameter as the form encoding carries it,
an httpx answer or exception as a :data:`~billing.gateway.results.GatewayResult`, and the
log line of a call.

It decides only what kind of result an answer is (the mapping in
:mod:`billing.gateway.client`'s docstring); it never sends anything, never reads a
``JsonReply``'s meaning (:mod:`billing.gateway.classify` does) and never keeps or logs a
value before :mod:`billing.gateway.redact` has cut the secrets out of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx
from pydantic import ValidationError

from billing.gateway.redact import Secrets, redact_cut, redact_json
from billing.gateway.results import (
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
)

log = logging.getLogger("billing.gateway")

SNIPPET_LIMIT: Final = 500
_DETAIL_LIMIT: Final = 300
_REQUEST_ID_HEADERS: Final = (
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-trace-id",
)


def form_value(value: object) -> str:
    """A parameter as the form encoding carries it: nested objects as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def to_result(
    response: httpx.Response, parse: Callable[[Any], object], secrets: Secrets
) -> GatewayResult:
    status = response.status_code
    request_id = _request_id(response.headers, secrets)
    content_type = response.headers.get("content-type", "")[:100]
    body = _json_object(response.content)

    if status >= 500:
        return HttpErrorReply(status, _snippet(response, secrets), request_id)
    if body is not None and (200 <= status <= 299 or 400 <= status <= 499):
        redact_json(body, secrets)
        try:
            parse(body)
        except ValidationError:
            pass  # unreadable: handled like a body that is not JSON
        else:
            return JsonReply(status, body, request_id)
    if 200 <= status <= 299:
        return NotJsonReply(status, content_type, _snippet(response, secrets), request_id)
    return HttpErrorReply(status, _snippet(response, secrets), request_id)


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(content)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return parsed if isinstance(parsed, dict) else None


def _request_id(headers: httpx.Headers, secrets: Secrets) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if isinstance(value, str) and value:
            return redact_cut(value, secrets, 128)
    return None


def _snippet(response: httpx.Response, secrets: Secrets) -> str:
    return redact_cut(response.text, secrets, SNIPPET_LIMIT)


def transport_detail(exc: Exception, secrets: Secrets) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact_cut(text, secrets, _DETAIL_LIMIT)


def log_result(
    method: str, fields: Mapping[str, object], result: GatewayResult, elapsed_ms: float
) -> None:
    http_status = getattr(result, "http_status", None)
    request_id = getattr(result, "request_id", None)
    level = logging.INFO if isinstance(result, JsonReply) else logging.WARNING
    context = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    log.log(
        level,
        "gateway %s %s -> %s http_status=%s elapsed_ms=%.0f request_id=%s",
        method,
        context,
        type(result).__name__,
        http_status,
        elapsed_ms,
        request_id,
        extra={
            "gateway_method": method,
            "gateway_result": type(result).__name__,
            "http_status": http_status,
            "elapsed_ms": round(elapsed_ms, 1),
        },
    )
    detail = getattr(result, "detail", None)
    if detail:
        log.warning("gateway %s %s: %s", method, context, detail)
