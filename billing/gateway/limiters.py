"""The gateway call limiters: who may call the gateway now, under a calls-per-second limit.

Limiters (``acquire()`` never blocks, never raises):

* :class:`RedisCallLimiter`: a *sliding log* in one Redis sorted set, updated atomically
  by a Lua script that reads the Redis server's clock (so machines with skewed clocks
  still share one timeline). A call is granted at time ``t`` only if fewer than
  ``calls_per_second`` grants lie in the closed window ``[t - 1s - margin, t]``; hence
  *every* 1-second window, wherever it starts, holds at most the limit. A fixed-window
  counter (dramatiq's ``WindowRateLimiter`` with ``window=1`` keeps one counter per wall-clock
  second, read from each machine's own clock; ``BucketRateLimiter`` likewise) lets up
  to 2x the limit through across a second boundary, which is exactly the burst the
  gateway's anti-DDoS protection would see. When Redis fails, the limiter fails
  *closed*: it denies (the caller waits and retries), probes Redis again after
  ``outage_cooldown`` seconds, and logs one WARNING per outage.

  ``margin`` (default 0.1 s): the gateway counts *arrivals*, and a request arrives some
  variable delay after its grant (thread scheduling, GIL, connection pool, network). With
  an exact 1-second window, grants pack tightly at the window's edges, so a few ms of
  jitter already let the gateway see limit + 4 in one second (measured: 54 at 50/s).
  Counting grants over ``1 + margin`` seconds keeps the gateway's view under the limit
  while that jitter stays below ``margin``, at the price of a top rate of
  ``limit / (1 + margin)`` (about 91% with the default). ``margin=0`` gives the exact
  sliding window.

  ``spread`` (default 1 s): a sliding log alone grants a whole second's quota at once
  (100 calls in a few ms at 100/s), and anti-DDoS rules often look at shorter intervals
  too. So grants are also kept at least ``spread / calls_per_second`` apart: a full
  quota takes at least ``spread`` seconds, the instantaneous rate stays under
  ``limit / spread``, and the steady rate is unchanged. ``spread=0`` turns it off;
  ``spread=1`` (the default) paces calls evenly at the limit. With booked slots (below) a
  shorter spread sends each quota as a burst at up to ``limit / spread`` calls a second,
  and a gateway that queues such a burst counts its tail in the next second (measured at
  300/s with 0.5: 368 arrivals in one second against 300 grants; evenly paced: 312).

  ``reserve(max_ahead)``: instead of polling ``acquire()`` until a slot frees up, a caller
  may book the next free slot, at most ``max_ahead`` seconds from now, in the same log
  (:func:`billing.gateway.slots.next_slot`: slots are given out in order, so a booked
  slot is counted like a grant by every window it falls in) and is told how long to wait
  for it. One Redis round trip per call instead of one per poll, and no queue of pollers
  burning the worker's CPU (and so delaying the calls already granted).
* :class:`LocalCallLimiter`: the same sliding log in memory, thread-safe, per process
  (for the demo and tests; it is *not* a global limit).

Requires Redis >= 5 (scripts replicated by effects, so ``TIME`` inside a script is fine).
A limiter only grants, books or denies; it never waits, never calls the gateway and never
raises from ``acquire()`` or ``reserve()`` (a Redis failure is a denial). The waiting is
:class:`billing.gateway.rate_limit.RateLimitedGateway`'s.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol, runtime_checkable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from billing.errors import ConfigurationError
from billing.gateway.slots import next_slot

# The logger of billing.gateway.rate_limit, where operators already look for these lines.
log = logging.getLogger("billing.gateway.rate_limit")

#: The Redis key shared by every process limiting calls to the one gateway.
DEFAULT_KEY: Final = "billing:gateway:ratelimit"
#: Extra seconds in the window, absorbing the jitter between a grant and the arrival.
DEFAULT_MARGIN: Final = 0.1
#: A full window's quota is spread over at least this many seconds.
DEFAULT_SPREAD: Final = 1.0
#: Redis socket timeouts of a client made by :func:`build_limiter`: a hung Redis must not
#: hold a worker thread long; a slow answer is a denial and the caller asks again.
_REDIS_TIMEOUT: Final = 1.0

# KEYS[1]: sorted set of slots given out (score = server time in µs of the grant, or of the
# booked slot, member = unique token). ARGV[1]: the limit per window; ARGV[2]: the window in
# µs; ARGV[3]: this call's token; ARGV[4]: the least µs between two slots; ARGV[5]: how many
# µs ahead a slot may be booked (0: only a grant now). The slot is placed after every slot
# given out, as billing.gateway.slots.next_slot places it. Returns {1, now_us, slot_us} when
# given, {0, now_us, slot_us} (the slot it would have been, not booked) when not. Numbers
# are formatted with %.0f: Lua 5.1 would print a 16-digit number in %.14g and lose the µs.
_RESERVE_LUA: Final = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local spacing = tonumber(ARGV[4])
local ahead = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - window))
local slot = now
local count = redis.call('ZCARD', KEYS[1])
if count > 0 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  slot = math.max(slot, tonumber(last[2]) + spacing)
  if count >= limit then
    local kth = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
    slot = math.max(slot, tonumber(kth[2]) + window + 1)
  end
end
if slot - now > ahead then
  return {0, now, slot}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', slot), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.floor((slot - now + window) / 1000) + 1000)
return {1, now, slot}
"""


@runtime_checkable
class CallLimiter(Protocol):
    """Grants slots for gateway calls."""

    def acquire(self) -> bool:
        """Take a slot now if one is free. Never blocks for long, never raises."""
        ...


@runtime_checkable
class SlotLimiter(CallLimiter, Protocol):
    """A limiter that can also book the next free slot ahead of time."""

    def reserve(self, max_ahead: float) -> float | None:
        """Book the next free slot if it is at most ``max_ahead`` seconds away: the seconds
        to wait for it (0: now), or ``None`` (nothing booked). Never blocks, never raises."""
        ...


def _window(margin: float) -> float:
    if not 0 <= margin <= 10:
        raise ConfigurationError("rate limit margin must be between 0 and 10 seconds")
    return 1.0 + margin


def _spacing(spread: float, calls_per_second: int) -> float:
    if not 0 <= spread <= 1:
        raise ConfigurationError("rate limit spread must be between 0 and 1 second")
    return spread / calls_per_second


def check_limit(calls_per_second: int) -> int:
    if isinstance(calls_per_second, bool) or not isinstance(calls_per_second, int):
        raise ConfigurationError("gateway rate limit must be a whole number of calls per second")
    if calls_per_second < 1:
        raise ConfigurationError("gateway rate limit must be at least 1 call per second")
    return calls_per_second


class LocalCallLimiter:
    """An in-memory sliding log: at most ``calls_per_second`` grants in any closed
    window of ``1 + margin`` seconds of ``clock``, at least ``spread / calls_per_second``
    seconds apart. Thread-safe; limits this process only."""

    def __init__(
        self,
        calls_per_second: int,
        *,
        margin: float = DEFAULT_MARGIN,
        spread: float = DEFAULT_SPREAD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.calls_per_second = check_limit(calls_per_second)
        self.window = _window(margin)
        self.min_interval = _spacing(spread, self.calls_per_second)
        self._clock = clock
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalCallLimiter({self.calls_per_second} per {self.window:g}s)"

    def acquire(self) -> bool:
        return self.reserve(0.0) is not None

    def reserve(self, max_ahead: float) -> float | None:
        with self._lock:
            now = self._clock()
            horizon = now - self.window
            slots = self._slots
            while slots and slots[0] < horizon:
                slots.popleft()
            slot = next_slot(
                slots,
                now,
                limit=self.calls_per_second,
                window=self.window,
                spacing=self.min_interval,
            )
            if slot - now > max_ahead:
                return None
            slots.append(slot)
            return slot - now


class RedisCallLimiter:
    """A sliding-log limiter in Redis, shared by every process using the same ``key``.

    ``acquire()`` is one atomic script call (``EVALSHA``). Redis errors never escape:
    the limiter denies, skips Redis for ``outage_cooldown`` seconds (so thousands of
    waiting threads do not hammer a dead server), then probes again. One WARNING is
    logged when an outage starts and one when Redis answers again.

    The client is closed by :meth:`close` only when ``owns_client`` is true (as for a
    limiter made by :meth:`from_url`).
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        calls_per_second: int,
        *,
        margin: float = DEFAULT_MARGIN,
        spread: float = DEFAULT_SPREAD,
        outage_cooldown: float = 1.0,
        owns_client: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not key:
            raise ConfigurationError("rate limit key must not be empty")
        self.key = key
        self.calls_per_second = check_limit(calls_per_second)
        self.window = _window(margin)
        self._window_us = round(self.window * 1_000_000)
        self.min_interval = _spacing(spread, self.calls_per_second)
        self._min_interval_us = round(self.min_interval * 1_000_000)
        self._client = client
        self._owns_client = owns_client
        self._script = client.register_script(_RESERVE_LUA)
        self._outage_cooldown = outage_cooldown
        self._clock = clock
        self._token_prefix = uuid.uuid4().hex
        self._tokens = itertools.count()
        self._lock = threading.Lock()  # guards the outage state only, never a Redis call
        self._down = False
        self._probe_at = 0.0

    @classmethod
    def from_url(
        cls, url: str, key: str = DEFAULT_KEY, calls_per_second: int = 1, **kwargs: Any
    ) -> RedisCallLimiter:
        """A limiter with its own client (short timeouts, no client-side retries);
        :meth:`close` closes that client. Connects lazily, on the first ``acquire()``."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=_REDIS_TIMEOUT,
            socket_connect_timeout=_REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, key, calls_per_second, owns_client=True, **kwargs)

    def __repr__(self) -> str:
        return f"RedisCallLimiter({self.key!r}, {self.calls_per_second} per {self.window:g}s)"

    def acquire(self) -> bool:
        return self.try_acquire() is not None

    def try_acquire(self) -> float | None:
        """Like :meth:`acquire`, but a grant returns the Redis server time of the grant
        (seconds since the epoch, µs precision) and a denial returns ``None``."""
        reply = self._book(0)
        return None if reply is None else reply[1] / 1_000_000

    def reserve(self, max_ahead: float) -> float | None:
        booked = self.try_reserve(max_ahead)
        return None if booked is None else booked[1] - booked[0]

    def try_reserve(self, max_ahead: float) -> tuple[float, float] | None:
        """Like :meth:`reserve`, but returns the Redis server times (seconds since the
        epoch, µs precision) of now and of the booked slot, or ``None``."""
        reply = self._book(max(0, round(max_ahead * 1_000_000)))
        return None if reply is None else (reply[0] / 1_000_000, reply[1] / 1_000_000)

    def _book(self, ahead_us: int) -> tuple[int, int] | None:
        """One script call: (server now, slot) in µs when a slot was given, else ``None``."""
        with self._lock:
            if self._down:
                now = self._clock()
                if now < self._probe_at:
                    return None
                # This thread probes Redis; the others keep denying until it answers.
                self._probe_at = now + self._outage_cooldown
        token = f"{self._token_prefix}:{next(self._tokens)}"
        args: list[str | int] = [
            self.calls_per_second,
            self._window_us,
            token,
            self._min_interval_us,
            ahead_us,
        ]
        try:
            reply = self._script(keys=[self.key], args=args)
            if not isinstance(reply, list | tuple) or len(reply) != 3:
                raise TypeError(f"unexpected script reply {reply!r:.100}")
            granted, now_us, slot_us = (int(part) for part in reply)
        except (redis.RedisError, OSError, ValueError, TypeError) as exc:
            self._outage(exc)
            return None
        if self._down:
            self._recovered()
        return (now_us, slot_us) if granted else None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _outage(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._probe_at = self._clock() + self._outage_cooldown
        if first:
            log.warning(
                "gateway rate limiter: Redis unavailable (%s: %s); denying gateway calls "
                "until it answers again",
                type(exc).__name__,
                exc,
            )

    def _recovered(self) -> None:
        with self._lock:
            was_down = self._down
            self._down = False
        if was_down:
            log.warning("gateway rate limiter: Redis answers again; granting calls")
