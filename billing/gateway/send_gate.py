"""The last check before a gateway request is written: is its rate-limit slot still good?

:class:`billing.gateway.rate_limit.RateLimitedGateway` sends each call on a slot. Between
waking for the slot and the request's first byte there is still the HTTP client's own work
(building the request, the connection pool), which a busy process can stretch well past the
slot. So the rate-limited gateway opens a gate (:func:`sending_on_slot`) around the call, and
the HTTP transport (:class:`GatedTransport`, under :class:`billing.gateway.http_pool.ShardedHttp`)
calls :func:`check_slot` immediately before handing the request to the connection pool: a
slot that expired meanwhile raises :class:`SlotMissed`, and the rate-limited gateway books a
new slot and makes the call again.

This module decides only whether the request may still be written. It must never write,
sleep or retry itself, and must never raise once a byte of the request may have been sent
(:class:`SlotMissed` is raised before the inner transport is called, so nothing was sent
and the same request may be made again). Without an open gate it never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx

#: The open gate of this thread's (context's) call: true once its slot has expired.
_EXPIRED: ContextVar[Callable[[], bool] | None] = ContextVar("billing_send_gate", default=None)


class SlotMissed(Exception):
    """The call's rate-limit slot expired before the request was written; nothing sent."""


@contextmanager
def sending_on_slot(expired: Callable[[], bool]) -> Iterator[None]:
    """Within this block, a request the gated transport is about to write raises
    :class:`SlotMissed` when ``expired()`` is true."""
    token = _EXPIRED.set(expired)
    try:
        yield
    finally:
        _EXPIRED.reset(token)


def check_slot() -> None:
    """Raise :class:`SlotMissed` when an open gate says the slot has expired."""
    expired = _EXPIRED.get()
    if expired is not None and expired():
        raise SlotMissed


class GatedTransport(httpx.BaseTransport):
    """An httpx transport that checks the gate right before the inner transport writes."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_slot()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
