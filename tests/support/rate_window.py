"""Measuring a rate limit from the outside: threads that call a gateway as fast as it lets
them, and how many calls fell in any one window.

The one implementation: the rate-limit tests and scripts/bench_ratelimit.py both use it.
It drives and counts; it must never call Redis itself or decide a limit.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class _StatusGateway(Protocol):
    def order_status(self, *, order_id: str) -> object: ...


def call_from_threads(
    gateway: _StatusGateway, threads: int, start_at: float, stop_at: float, order_id: str
) -> None:
    """``threads`` threads call ``gateway.order_status`` in a loop from ``start_at`` until
    ``stop_at`` (epoch seconds), as one worker process would; returns once all stopped."""

    def run() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            gateway.order_status(order_id=order_id)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def max_in_closed_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of times in any closed window [t, t + window]."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] < t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
