"""A global limit on gateway calls per second, shared by every worker on every machine.

:class:`RateLimitedGateway` wraps any :class:`~billing.gateway.port.Gateway`. Before each
call it asks a :class:`CallLimiter` for a slot; when the slot is denied it sleeps a short
jittered interval (holding no lock, no connection, no transaction) and asks again. After
``max_wait`` seconds without a slot it gives up with :class:`ConnectionFailed` ("not sent"):
the classifier reads that as TRANSIENT, so nothing was charged and the attempt is retried.

With a limiter that books slots (:class:`SlotLimiter`, both limiters here) it polls only
while Redis is down: it books the next free slot within its deadline in one call, sleeps
until that slot and sends on it. The gateway counts arrivals, not grants: a call that wakes
more than ``max_lag`` after its slot (a busy machine: the GIL, the CPU, the other threads)
would arrive together with the calls booked after it, so it books a new slot instead (the
missed one stays counted: the limit only gets stricter) and never sends late. The same
check is made once more by the HTTP transport immediately before the request is written
(:mod:`billing.gateway.send_gate`): the client's own work between waking and writing can
be stretched as much on a busy machine; a slot that expired there is given up the same
way, nothing having been sent.
A charge also carries ``send_within`` (what is left of its send lease): no slot is waited
for past it, so a slot granted late never starts a call the reconciliation may already
have ruled "not received".

The limiters themselves (``acquire()`` never blocks, never raises: a Redis sliding log shared
by every process, or one in memory per process) are in :mod:`billing.gateway.limiters`;
this module re-exports them.

:func:`build_limiter` builds one from settings (``redis_url``, calls per second).
It never sends a call without a slot, never sends more than ``max_lag`` after its slot, and
never raises for want of one.
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
    SlotLimiter,
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
from billing.gateway.send_gate import SlotMissed, sending_on_slot
from billing.gateway.slots import late

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_MARGIN",
    "DEFAULT_SPREAD",
    "CallLimiter",
    "LocalCallLimiter",
    "RateLimitedGateway",
    "RedisCallLimiter",
    "SlotLimiter",
    "build_limiter",
]

log = logging.getLogger("billing.gateway.rate_limit")

#: A call that wakes later than this after its booked slot books a new one: half the
#: window's margin, the other half left for the way from here to the gateway.
DEFAULT_MAX_LAG = DEFAULT_MARGIN / 2


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
        max_lag: float = DEFAULT_MAX_LAG,
    ) -> None:
        if max_wait < 0 or poll_interval <= 0 or max_lag < 0:
            raise ConfigurationError("max_wait, max_lag must be >= 0 and poll_interval > 0")
        self.inner = inner
        self.limiter = limiter
        self.max_wait = max_wait
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self.max_lag = max_lag
        self._reserve = limiter.reserve if isinstance(limiter, SlotLimiter) else None
        #: Slots booked and then missed (woken more than ``max_lag`` late); for tests/benches.
        self.missed_slots = 0

    def __repr__(self) -> str:
        return f"RateLimitedGateway({self.inner!r}, {self.limiter!r}, max_wait={self.max_wait:g})"

    def charge(self, request: ChargeRequest) -> GatewayResult:
        return self._limited(
            "recurrentPayment.do",
            request.order_number,
            lambda: self.inner.charge(request),
            request.send_within,
        )

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult:
        return self._limited(
            "getOrderStatusExtended.do",
            order_number or order_id,
            lambda: self.inner.order_status(order_number=order_number, order_id=order_id),
        )

    def refund(self, request: RefundRequest) -> GatewayResult:
        return self._limited("refund.do", request.order_id, lambda: self.inner.refund(request))

    def reverse(self, request: ReverseRequest) -> GatewayResult:
        return self._limited("reverse.do", request.order_id, lambda: self.inner.reverse(request))

    def deposit(self, request: DepositRequest) -> GatewayResult:
        return self._limited("deposit.do", request.order_id, lambda: self.inner.deposit(request))

    def decline(self, request: DeclineRequest) -> GatewayResult:
        order = request.order_id or request.order_number
        return self._limited("decline.do", order, lambda: self.inner.decline(request))

    def close(self) -> None:
        """Close the inner gateway and the limiter, when they can be closed."""
        for part in (self.inner, self.limiter):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def _limited(
        self,
        method: str,
        order: str | None,
        call: Callable[[], GatewayResult],
        within: float | None = None,
    ) -> GatewayResult:
        """``call()`` on a slot; a "not sent" result after ``max_wait`` without one, or
        sooner when the caller must start the call ``within`` seconds (a send's lease
        deadline). The request is written only while its slot is at most ``max_lag`` old
        and the deadline has not passed (the gate, checked by the HTTP transport right
        before it writes); otherwise nothing was sent and a new slot is taken."""
        wait = self.max_wait if within is None else min(self.max_wait, within)
        deadline = self._clock() + wait
        if within is not None and within <= 0:
            return self._give_up(method, order, wait)
        while True:
            slot = self._wait_for_slot(deadline)
            if slot is None:
                return self._give_up(method, order, wait)

            def expired(slot: float = slot) -> bool:
                now = self._clock()
                return now > deadline or late(now, slot, self.max_lag)

            try:
                with sending_on_slot(expired):
                    return call()
            except SlotMissed:
                self.missed_slots += 1
                log.debug("gateway %s order=%s: slot expired before the write", method, order)

    def _wait_for_slot(self, deadline: float) -> float | None:
        """The time (this clock) of the slot taken, or ``None`` once ``deadline`` passed."""
        while True:
            if self._reserve is None:
                if self.limiter.acquire():
                    return self._clock()
            else:
                delay = self._reserve(max(0.0, deadline - self._clock()))
                if delay is not None:
                    slot = self._clock() + delay
                    if delay > 0:
                        self._sleep(delay)
                    woke = self._clock()
                    if woke > deadline:  # woke past the lease's send window: never send
                        return None
                    if not late(woke, slot, self.max_lag):
                        return slot
                    self.missed_slots += 1
                    continue
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            # 0.5x..1.5x the interval, so waiting threads do not poll in lockstep.
            self._sleep(min(remaining, self.poll_interval * (0.5 + self._jitter())))

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
