"""A global limit on gateway calls per second, shared by every worker on every machine.

:class:`RateLimitedGateway` wraps any :class:`~billing.gateway.port.Gateway`. Before each
call it asks a :class:`CallLimiter` for a slot; when the slot is denied it sleeps a short
jittered interval (holding no lock, no connection, no transaction) and asks again. After
``max_wait`` seconds without a slot it gives up with :class:`ConnectionFailed` ("not sent"):
the classifier reads that as TRANSIENT, so nothing was charged and the attempt is retried.
A charge also carries ``send_within`` (what is left of its send lease): no slot is waited
for past it, so a slot granted late never starts a call the reconciliation may already
have ruled "not received".

The limiters themselves (``acquire()`` never blocks, never raises: a Redis sliding log shared
by every process, or one in memory per process) are in :mod:`billing.gateway.limiters`;
this module re-exports them.

:func:`build_limiter` builds one from settings (``redis_url``, calls per second).
It never sends a call without a slot and never raises for want of one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from billing.errors import ConfigurationError
from billing.gateway.limiters import (
    DEFAULT_KEY,
    DEFAULT_MARGIN,
    DEFAULT_SPREAD,
    CallLimiter,
    LocalCallLimiter,
    RedisCallLimiter,
    check_limit,
)
from billing.gateway.port import (
    ChargeRequest,
    DeclineRequest,
    DepositRequest,
    Gateway,
    RefundRequest,
    ReverseRequest,
)
from billing.gateway.results import RATE_LIMITED, ConnectionFailed, GatewayResult

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_MARGIN",
    "DEFAULT_SPREAD",
    "CallLimiter",
    "LocalCallLimiter",
    "RateLimitedGateway",
    "RedisCallLimiter",
    "build_limiter",
]

log = logging.getLogger("billing.gateway.rate_limit")


class RateLimitedGateway:
    """A :class:`~billing.gateway.port.Gateway` that takes a limiter slot before
    every call, waiting (never raising) up to ``max_wait`` seconds for one."""

    def __init__(
        self,
        inner: Gateway,
        limiter: CallLimiter,
        *,
        max_wait: float = 60.0,
        poll_interval: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_wait < 0 or poll_interval <= 0:
            raise ConfigurationError("max_wait must be >= 0 and poll_interval > 0")
        self.inner = inner
        self.limiter = limiter
        self.max_wait = max_wait
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def __repr__(self) -> str:
        return f"RateLimitedGateway({self.inner!r}, {self.limiter!r}, max_wait={self.max_wait:g})"

    def charge(self, request: ChargeRequest) -> GatewayResult:
        return self._wait_for_slot(
            "recurrentPayment.do", request.order_number, request.send_within
        ) or (self.inner.charge(request))

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult:
        return self._wait_for_slot("getOrderStatusExtended.do", order_number or order_id) or (
            self.inner.order_status(order_number=order_number, order_id=order_id)
        )

    def refund(self, request: RefundRequest) -> GatewayResult:
        return self._wait_for_slot("refund.do", request.order_id) or self.inner.refund(request)

    def reverse(self, request: ReverseRequest) -> GatewayResult:
        return self._wait_for_slot("reverse.do", request.order_id) or self.inner.reverse(request)

    def deposit(self, request: DepositRequest) -> GatewayResult:
        return self._wait_for_slot("deposit.do", request.order_id) or self.inner.deposit(request)

    def decline(self, request: DeclineRequest) -> GatewayResult:
        order = request.order_id or request.order_number
        return self._wait_for_slot("decline.do", order) or self.inner.decline(request)

    def close(self) -> None:
        """Close the inner gateway and the limiter, when they can be closed."""
        for part in (self.inner, self.limiter):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def _wait_for_slot(
        self, method: str, order: str | None, within: float | None = None
    ) -> ConnectionFailed | None:
        """``None`` once a slot is taken; a "not sent" result after ``max_wait``, or sooner
        when the caller must start the call ``within`` seconds (a send's lease deadline)."""
        wait = self.max_wait if within is None else min(self.max_wait, within)
        deadline = self._clock() + wait
        if within is not None and within <= 0:
            return self._give_up(method, order, wait)
        while not self.limiter.acquire():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return self._give_up(method, order, wait)
            # 0.5x..1.5x the interval, so waiting threads do not poll in lockstep.
            self._sleep(min(remaining, self.poll_interval * (0.5 + self._jitter())))
        return None

    def _give_up(self, method: str, order: str | None, waited: float) -> ConnectionFailed:
        log.warning(
            "gateway %s order=%s: no rate-limit slot within %gs; not sent", method, order, waited
        )
        return ConnectionFailed(
            detail=f"rate limit: no slot within {waited:g}s", reason=RATE_LIMITED
        )


def build_limiter(
    redis_url: str | None,
    calls_per_second: int | None,
    *,
    margin: float = DEFAULT_MARGIN,
    spread: float = DEFAULT_SPREAD,
    key: str = DEFAULT_KEY,
) -> CallLimiter | None:
    """The limiter for one merchant account's rate limit: ``None`` (no limit) for 0/None;
    a :class:`RedisCallLimiter` on ``key`` (:data:`DEFAULT_KEY` for the default account,
    one key per account) when there is a Redis URL; else a
    per-process :class:`LocalCallLimiter` (with a WARNING: that is not a global limit).
    Connects to nothing until the first call."""
    if not calls_per_second:
        return None
    check_limit(calls_per_second)
    if redis_url is None:
        log.warning(
            "gateway rate limit %d/s applies per process only: no Redis URL is set",
            calls_per_second,
        )
        return LocalCallLimiter(calls_per_second, margin=margin, spread=spread)
    return RedisCallLimiter.from_url(redis_url, key, calls_per_second, margin=margin, spread=spread)
