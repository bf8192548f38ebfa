"""RedisCallLimiter against a real Redis (``BILLING_TEST_REDIS_URL``, default db 14,
flushed by the ``redis_url`` fixture).

These tests fail, never skip, when Redis is down. The concurrency test runs threads in
this process and in two spawned processes against one key, booking slots as the workers
do, and checks the limit on the Redis server's own slot times (what the limiter guarantees)
and on the times the no-op gateway saw the calls (what the gateway would see, give or take
scheduling jitter).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis

from billing.gateway.rate_limit import (
    DEFAULT_MARGIN,
    DEFAULT_SPREAD,
    RateLimitedGateway,
    RedisCallLimiter,
)
from billing.gateway.results import GatewayResult, JsonReply
from tests.support.rate_window import call_from_threads, max_in_closed_window

pytestmark = pytest.mark.integration

KEY = "billing:test:ratelimit"


# -- basics -------------------------------------------------------------------------------------


def test_grants_exactly_the_limit_then_frees_slots_after_a_second(redis_url: str) -> None:
    limiter = RedisCallLimiter.from_url(redis_url, KEY, 5, spread=0)
    try:
        granted = [limiter.try_acquire() for _ in range(8)]
        assert all(t is not None for t in granted[:5])
        assert granted[5:] == [None, None, None]
        first = granted[0]
        assert first is not None
        # Wait (by the server's own clock) until the first grant has left the window.
        client = redis.Redis.from_url(redis_url)
        try:
            while True:
                seconds, micros = client.time()
                if seconds + micros / 1_000_000 > first + limiter.window:
                    break
                time.sleep(0.01)
            assert 0 < client.pttl(KEY) <= 2100  # an idle key disappears
            stored = client.zrange(KEY, 0, -1, withscores=True)
        finally:
            client.close()
        # Scores keep full microseconds (no %.14g rounding in Lua).
        assert [score / 1_000_000 for _, score in stored] == granted[:5]
        assert limiter.acquire()
    finally:
        limiter.close()


def test_keys_are_independent(redis_url: str) -> None:
    a = RedisCallLimiter.from_url(redis_url, KEY + ":a", 2, spread=0)
    b = RedisCallLimiter.from_url(redis_url, KEY + ":b", 2, spread=0)
    try:
        assert [a.acquire() for _ in range(3)] == [True, True, False]
        assert [b.acquire() for _ in range(3)] == [True, True, False]
    finally:
        a.close()
        b.close()


def test_limiters_sharing_a_key_share_the_limit(redis_url: str) -> None:
    a = RedisCallLimiter.from_url(redis_url, KEY, 4, spread=0)
    b = RedisCallLimiter.from_url(redis_url, KEY, 4, spread=0)
    try:
        answers = [limiter.acquire() for limiter in (a, b, a, b, a, b)]
        assert answers == [True] * 4 + [False] * 2
    finally:
        a.close()
        b.close()


def test_spread_keeps_grants_apart_across_limiters(redis_url: str) -> None:
    a = RedisCallLimiter.from_url(redis_url, KEY, 10, spread=1.0)  # >= 0.1 s apart
    b = RedisCallLimiter.from_url(redis_url, KEY, 10, spread=1.0)
    try:
        first = a.try_acquire()
        assert first is not None
        assert b.try_acquire() is None
        assert a.try_acquire() is None
        time.sleep(0.11)
        second = b.try_acquire()
        assert second is not None
        assert second - first >= 0.1
    finally:
        a.close()
        b.close()


def test_fails_closed_on_a_redis_error_and_recovers(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisCallLimiter(client, KEY, 3, spread=0, outage_cooldown=0.05)
    try:
        caplog.set_level(logging.WARNING, logger="billing.gateway.rate_limit")
        client.set(KEY, "not a sorted set")  # every script call now fails with WRONGTYPE
        assert not any(limiter.acquire() for _ in range(20))
        time.sleep(0.06)
        assert not limiter.acquire()
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1
        assert "Redis unavailable" in messages[0]
        client.delete(KEY)
        time.sleep(0.06)
        assert limiter.acquire()
        assert "answers again" in caplog.records[-1].getMessage()
    finally:
        limiter.close()  # does not own the client
        client.close()


def test_books_the_next_slot_behind_the_ones_given_out(redis_url: str) -> None:
    limiter = RedisCallLimiter.from_url(redis_url, KEY, 3, spread=0)
    client = redis.Redis.from_url(redis_url)
    try:
        booked = [b for b in (limiter.try_reserve(5.0) for _ in range(4)) if b is not None]
        assert len(booked) == 4
        slots = [slot for _, slot in booked]
        # Three now, the fourth just after the first leaves the closed 1.1 s window.
        assert all(slot == now for now, slot in booked[:3])
        assert round((slots[3] - slots[0]) * 1_000_000) == 1_100_001
        stored = client.zrange(KEY, 0, -1, withscores=True)
        assert [score / 1_000_000 for _, score in stored] == slots
        # Nothing is granted in front of a booked slot, and a slot too far ahead is not
        # booked at all.
        assert not limiter.acquire()
        assert limiter.reserve(0.01) is None
        assert client.zcard(KEY) == 4
        # The next booking queues behind the fourth.
        fifth = limiter.try_reserve(5.0)
        assert fifth is not None
        assert round((fifth[1] - slots[1]) * 1_000_000) >= 1_100_001
        assert 0 < client.pttl(KEY) <= 4300  # expires once its last slot left the window
    finally:
        limiter.close()
        client.close()


def test_booked_slots_keep_the_spread(redis_url: str) -> None:
    limiter = RedisCallLimiter.from_url(redis_url, KEY, 10, spread=1.0)  # 0.1 s apart
    try:
        booked = [b for b in (limiter.try_reserve(2.0) for _ in range(4)) if b is not None]
        assert len(booked) == 4
        assert booked[0][0] == booked[0][1]  # the first: now
        slots_us = [round(slot * 1_000_000) for _, slot in booked]
        # Each queued exactly the spacing behind the one before (the calls took far less).
        gaps = [b - a for a, b in itertools.pairwise(slots_us)]
        assert all(gap >= 100_000 for gap in gaps), gaps
    finally:
        limiter.close()


def test_booking_fails_closed_on_a_redis_error(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisCallLimiter(client, KEY, 3, spread=0, outage_cooldown=0)
    try:
        client.set(KEY, "not a sorted set")
        assert limiter.reserve(5.0) is None
        client.delete(KEY)
        assert limiter.reserve(5.0) == 0.0
    finally:
        client.close()


# -- many threads in several processes ----------------------------------------------------------


class _RecordingLimiter:
    """Books slots as the workers do; remembers, per thread, the Redis server time of the
    last slot it was given."""

    def __init__(self, inner: RedisCallLimiter) -> None:
        self.inner = inner
        self.last = threading.local()

    def acquire(self) -> bool:
        raise AssertionError("a limiter that books slots is never polled")

    def reserve(self, max_ahead: float) -> float | None:
        booked = self.inner.try_reserve(max_ahead)
        if booked is None:
            return None
        now, self.last.granted_at = booked
        return self.last.granted_at - now


class _NoopGateway:
    """Answers at once; records (grant time, local time the call reached it)."""

    def __init__(self, limiter: _RecordingLimiter) -> None:
        self.limiter = limiter
        self.calls: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self.reply = JsonReply(200, {"errorCode": "0"})

    def charge(self, request: Any) -> GatewayResult:
        return self.order_status()

    def order_status(self, **kwargs: Any) -> GatewayResult:
        now = time.time()
        with self._lock:
            self.calls.append((self.limiter.last.granted_at, now))
        return self.reply


def _hammer(
    url: str, key: str, limit: int, threads: int, start_at: float, stop_at: float
) -> list[tuple[float, float]]:
    """``threads`` threads call a no-op gateway through one limiter (as one worker process
    would) from ``start_at`` until ``stop_at``; returns (grant time, call time) pairs."""
    limiter = _RecordingLimiter(RedisCallLimiter.from_url(url, key, limit))
    noop = _NoopGateway(limiter)
    gateway = RateLimitedGateway(noop, limiter, max_wait=10)

    call_from_threads(gateway, threads, start_at, stop_at, "x")
    limiter.inner.close()
    return noop.calls


def _start_together(barrier: Any, seconds: float) -> tuple[float, float]:
    """Once every process is ready (a spawned interpreter on a busy machine may take
    seconds to import), all start at the same moment: (start, stop) epoch seconds."""
    barrier.wait(timeout=60)
    start_at = time.time() + 0.2
    return start_at, start_at + seconds


def _process_main(queue: Any, barrier: Any, url: str, limit: int, threads: int) -> None:
    start_at, stop_at = _start_together(barrier, 2.0)
    queue.put(_hammer(url, KEY, limit, threads, start_at, stop_at))


def test_threads_and_processes_share_one_limit(redis_url: str) -> None:
    limit, seconds, processes, threads = 50, 2.0, 2, 4
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(processes + 1)
    children = [
        ctx.Process(target=_process_main, args=(queue, barrier, redis_url, limit, threads))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        start_at, stop_at = _start_together(barrier, seconds)
        results = [_hammer(redis_url, KEY, limit, threads, start_at, stop_at)]
        results += [queue.get(timeout=30) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
        queue.close()
        queue.join_thread()
    assert all(child.exitcode == 0 for child in children)

    assert all(results), "every process got calls through"
    pairs = [pair for result in results for pair in result]
    grants = [granted for granted, _ in pairs]
    calls = [called for _, called in pairs]
    window = 1.0 + DEFAULT_MARGIN
    # The limiter's guarantee, on the Redis server's grant times: at most the limit in any
    # window of 1 s + margin (so in any 1 s window too).
    assert max_in_closed_window(grants, window) <= limit
    # ... and at least spread / limit apart.
    ordered = sorted(grants)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= DEFAULT_SPREAD / limit - 1e-6
    # What the gateway sees: calls arrive some delay after their grant. While the spread
    # of those delays (same-host clocks: the offset cancels) stays within the margin, no
    # 1-second window of arrivals can hold more than the limit.
    delays = [called - granted for granted, called in pairs]
    jitter = max(delays) - min(delays)
    at_gateway = max_in_closed_window(calls, 1.0)
    assert at_gateway <= limit or jitter > DEFAULT_MARGIN, (at_gateway, jitter)
    # And the limit is used: close to limit x duration.
    in_run = [t for t in calls if start_at <= t < stop_at]
    assert len(in_run) >= 0.8 * limit * seconds, len(in_run)
