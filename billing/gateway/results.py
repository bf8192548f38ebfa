"""Typed results of one gateway call. Nothing here raises.

A call either got a JSON body back (:class:`JsonReply`) or failed in one of
several distinct ways. ``request_sent`` tells whether the gateway may have
received (and acted on) the request: only then is the outcome unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: ``ConnectionFailed.reason`` (and the classified outcome's reason) when the call was held
#: back by our own rate limiter: it says nothing about the gateway's health or the card.
RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class JsonReply:
    """HTTP 2xx/4xx with a JSON object body."""

    http_status: int
    body: dict[str, Any]
    request_id: str | None = None


@dataclass(frozen=True)
class HttpErrorReply:
    """HTTP 5xx (or another non-2xx without a JSON object body)."""

    http_status: int
    snippet: str
    request_id: str | None = None


@dataclass(frozen=True)
class NotJsonReply:
    """A 2xx answer whose body is not a JSON object (HTML error page, garbage)."""

    http_status: int
    content_type: str
    snippet: str
    request_id: str | None = None


@dataclass(frozen=True)
class ConnectionFailed:
    """The request never left: connection refused, DNS failure, connect or pool timeout,
    or our own rate limiter gave no slot in time (``reason`` :data:`RATE_LIMITED`)."""

    detail: str
    request_sent: bool = False
    reason: str = "connect_failed"


@dataclass(frozen=True)
class ReadTimedOut:
    """The request was sent but no answer came in time: the outcome is unknown."""

    detail: str
    request_sent: bool = True


@dataclass(frozen=True)
class ConnectionLost:
    """The connection broke after (part of) the request was written: outcome unknown."""

    detail: str
    request_sent: bool = True


GatewayResult = (
    JsonReply | HttpErrorReply | NotJsonReply | ConnectionFailed | ReadTimedOut | ConnectionLost
)
