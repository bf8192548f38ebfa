"""Measure the global gateway rate limit: N processes x M threads call a no-op gateway
through RateLimitedGateway + RedisCallLimiter at limit L for T seconds.

Prints numbers, asserts nothing. "At the gateway" counts the local times the no-op gateway
was entered; "grants" counts the Redis server times of the grants (same host: same clock).

    .venv/bin/python scripts/bench_ratelimit.py --processes 4 --threads 8 --limit 100 --seconds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, as scripts/chaos.py

from billing.gateway.rate_limit import (
    DEFAULT_MARGIN,
    DEFAULT_SPREAD,
    RateLimitedGateway,
    RedisCallLimiter,
)
from billing.gateway.results import GatewayResult, JsonReply
from tests.support.rate_window import call_from_threads, max_in_closed_window


class _Recording:
    """Limiter wrapper (per-thread last grant time) and no-op gateway in one."""

    def __init__(self, limiter: RedisCallLimiter) -> None:
        self.limiter = limiter
        self.local = threading.local()
        self.lock = threading.Lock()
        self.pairs: list[tuple[float, float]] = []
        self.attempts = 0
        self.reply = JsonReply(200, {"errorCode": "0"})

    def acquire(self) -> bool:
        self.local.granted_at = self.limiter.try_acquire()
        with self.lock:
            self.attempts += 1
        return self.local.granted_at is not None

    def reserve(self, max_ahead: float) -> float | None:
        """Books a slot as the workers do (``--poll`` polls ``acquire`` instead); the
        slot's Redis server time is the "grant" time."""
        with self.lock:
            self.attempts += 1
        booked = self.limiter.try_reserve(max_ahead)
        if booked is None:
            return None
        now, self.local.granted_at = booked
        return float(self.local.granted_at - now)


class _Polling:
    """``acquire`` only: the gateway wrapper polls, as before slots were booked."""

    def __init__(self, recording: _Recording) -> None:
        self.acquire = recording.acquire

    def charge(self, request: Any) -> GatewayResult:
        return self.order_status()

    def order_status(self, **kwargs: Any) -> GatewayResult:
        now = time.time()
        with self.lock:
            self.pairs.append((self.local.granted_at, now))
        return self.reply


def _process(
    queue: Any,
    url: str,
    key: str,
    limit: int,
    margin: float,
    spread: float,
    threads: int,
    start_at: float,
    stop_at: float,
    poll: bool,
) -> None:
    limiter = RedisCallLimiter.from_url(url, key, limit, margin=margin, spread=spread)
    recording = _Recording(limiter)
    limiter: Any = _Polling(recording) if poll else recording
    gateway = RateLimitedGateway(recording, limiter, max_wait=30)

    call_from_threads(gateway, threads, start_at, stop_at, "bench")
    limiter.close()
    queue.put((os.getpid(), recording.pairs, recording.attempts))


def row(label: str, value: object) -> None:
    print(f"{label + ':':<48} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--limit", type=int, default=100, help="calls per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--spread", type=float, default=DEFAULT_SPREAD)
    parser.add_argument("--poll", action="store_true", help="poll acquire(), book no slots")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BILLING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    )
    args = parser.parse_args()

    key = f"billing:bench:ratelimit:{uuid.uuid4().hex}"
    start_at = time.time() + 1.0 + 0.3 * args.processes  # let the interpreters start
    stop_at = start_at + args.seconds
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    children = [
        ctx.Process(
            target=_process,
            args=(
                queue,
                args.redis_url,
                key,
                args.limit,
                args.margin,
                args.spread,
                args.threads,
                start_at,
                stop_at,
                args.poll,
            ),
        )
        for _ in range(args.processes)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=args.seconds + 120) for _ in children]
    elapsed = time.time() - start_at
    for child in children:
        child.join()
    queue.close()
    queue.join_thread()
    client = redis.Redis.from_url(args.redis_url)
    client.delete(key)
    client.close()

    pairs = [pair for _, got, _ in results for pair in got]
    attempts = sum(n for _, _, n in results)
    calls = sorted(called for _, called in pairs)
    grants = sorted(granted for granted, _ in pairs)
    in_run = [t for t in calls if start_at <= t < stop_at]
    delays_ms = sorted((called - granted) * 1000 for granted, called in pairs)
    per_second = [
        sum(start_at + s <= t < start_at + s + 1 for t in calls) for s in range(int(args.seconds))
    ]

    print(
        f"setup: {args.processes} processes x {args.threads} threads, limit {args.limit}/s, "
        f"margin {args.margin:g}s, spread {args.spread:g}s, {args.seconds:g}s, {args.redis_url}"
    )
    row("limit (calls/s)", args.limit)
    row("calls made in the run", len(in_run))
    row("achieved calls/s overall", f"{len(in_run) / args.seconds:.1f}")
    row("steady-state ceiling limit/(1+margin)", f"{args.limit / (1 + args.margin):.1f}")
    row("max calls in any 1 s window, at the gateway", max_in_closed_window(calls, 1.0))
    row("max grants in any 1 s window, Redis time", max_in_closed_window(grants, 1.0))
    row(
        f"max grants in any {1 + args.margin:g} s window, Redis time",
        max_in_closed_window(grants, 1 + args.margin),
    )
    row("max calls in any 100 ms window, at the gateway", max_in_closed_window(calls, 0.1))
    row("calls in each whole second of the run", per_second)
    row(
        "grant -> gateway delay (ms)",
        f"median {statistics.median(delays_ms):.2f}, "
        f"p99 {delays_ms[int(len(delays_ms) * 0.99)]:.2f}, "
        f"max - min {delays_ms[-1] - delays_ms[0]:.2f}",
    )
    row(
        "limiter script calls (EVALSHA)" + (" polling" if args.poll else " booking"),
        f"{attempts} ({attempts / elapsed:.0f}/s, {attempts / max(len(pairs), 1):.1f} per grant)",
    )


if __name__ == "__main__":
    main()
