"""Measuring a rate limit from the outside: how many calls fell in any one window.

The one implementation: the rate-limit tests and scripts/bench_ratelimit.py both use it.
It only counts; it must never sleep, call Redis or decide a limit.
"""

from __future__ import annotations


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
