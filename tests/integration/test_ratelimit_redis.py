"""RedisCallLimiter against a real Redis (db 14, flushed by the ``redis_url`` fixture).

These tests fail, never skip, when Redis is down. The concurrency test runs threads in
this process and in two spawned processes against one key and checks the limit on the
Redis server's own grant times (what the limiter guarantees) and on the times the no-op
gateway saw the calls (what the gateway would see, give or take scheduling jitter).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis

from billing.gateway.ratelimit import RateLimitedGateway, RedisCallLimiter
from billing.gateway.results import GatewayResult, JsonReply

pytestmark = pytest.mark.integration

KEY = "billing:test:ratelimit"


def max_in_closed_window(times: list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] < t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- basics -------------------------------------------------------------------------------------


def test_grants_exactly_the_limit_then_frees_slots_after_a_second(redis_url: str) -> None:
    limiter = RedisCallLimiter.from_url(redis_url, KEY, 5)
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
                if seconds + micros / 1_000_000 > first + 1.0:
                    break
                time.sleep(0.01)
            assert 0 < client.pttl(KEY) <= 2000  # an idle key disappears
            stored = client.zrange(KEY, 0, -1, withscores=True)
        finally:
            client.close()
        # Scores keep full microseconds (no %.14g rounding in Lua).
        assert [score / 1_000_000 for _, score in stored] == granted[:5]
        assert limiter.acquire()
    finally:
        limiter.close()


def test_keys_are_independent(redis_url: str) -> None:
    a = RedisCallLimiter.from_url(redis_url, KEY + ":a", 2)
    b = RedisCallLimiter.from_url(redis_url, KEY + ":b", 2)
    try:
        assert [a.acquire() for _ in range(3)] == [True, True, False]
        assert [b.acquire() for _ in range(3)] == [True, True, False]
    finally:
        a.close()
        b.close()


def test_limiters_sharing_a_key_share_the_limit(redis_url: str) -> None:
    a = RedisCallLimiter.from_url(redis_url, KEY, 4)
    b = RedisCallLimiter.from_url(redis_url, KEY, 4)
    try:
        answers = [limiter.acquire() for limiter in (a, b, a, b, a, b)]
        assert answers == [True] * 4 + [False] * 2
    finally:
        a.close()
        b.close()


def test_fails_closed_on_a_redis_error_and_recovers(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisCallLimiter(client, KEY, 3, outage_cooldown=0.05)
    try:
        caplog.set_level(logging.WARNING, logger="billing.gateway.ratelimit")
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


# -- many threads in several processes ----------------------------------------------------------


class _RecordingLimiter:
    """Records the Redis server time of every grant."""

    def __init__(self, inner: RedisCallLimiter) -> None:
        self.inner = inner
        self.grants: list[float] = []
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        granted_at = self.inner.try_acquire()
        if granted_at is None:
            return False
        with self._lock:
            self.grants.append(granted_at)
        return True


class _NoopGateway:
    """Answers at once; records when each call reached it (local wall clock)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()
        self.reply = JsonReply(200, {"errorCode": "0"})

    def recurrent_payment(self, **kwargs: Any) -> GatewayResult:
        return self.order_status()

    def order_status(self, **kwargs: Any) -> GatewayResult:
        now = time.time()
        with self._lock:
            self.calls.append(now)
        return self.reply


def _hammer(
    url: str, key: str, limit: int, threads: int, start_at: float, stop_at: float
) -> tuple[list[float], list[float]]:
    """``threads`` threads call a no-op gateway through one limiter (as one worker process
    would) from ``start_at`` until ``stop_at``; returns (grant times, call times)."""
    limiter = _RecordingLimiter(RedisCallLimiter.from_url(url, key, limit))
    noop = _NoopGateway()
    gateway = RateLimitedGateway(noop, limiter, max_wait=10)

    def run() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            gateway.order_status(order_id="x")

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    limiter.inner.close()
    return limiter.grants, noop.calls


def _process_main(queue: Any, *args: Any) -> None:
    queue.put(_hammer(*args))


def test_threads_and_processes_share_one_limit(redis_url: str) -> None:
    limit, seconds, processes, threads = 50, 2.0, 2, 4
    start_at = time.time() + 1.5  # time enough for spawned interpreters to start
    stop_at = start_at + seconds
    args = (redis_url, KEY, limit, threads, start_at, stop_at)

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    children = [ctx.Process(target=_process_main, args=(queue, *args)) for _ in range(processes)]
    for child in children:
        child.start()
    try:
        results = [_hammer(*args)]
        results += [queue.get(timeout=30) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
        queue.close()
        queue.join_thread()
    assert all(child.exitcode == 0 for child in children)

    grants = [t for granted, _ in results for t in granted]
    calls = [t for _, called in results for t in called]
    assert all(granted for granted, _ in results), "every process got some calls through"
    assert len(calls) == len(grants)
    # The guarantee: no 1-second window of server grant times holds more than the limit.
    assert max_in_closed_window(grants) <= limit
    # What the gateway sees: the same, give or take thread-scheduling jitter.
    assert max_in_closed_window(calls) <= limit + 2
    # And the limit is used: close to limit x duration.
    in_run = [t for t in calls if start_at <= t < stop_at]
    assert len(in_run) >= 0.8 * limit * seconds, len(in_run)
