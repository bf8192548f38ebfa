"""The ports the use cases depend on besides the gateway's (:mod:`billing.gateway.port`).

The clock is passed in (tests move it by hand); the dispatcher puts ids on the queue
(:mod:`billing.queue.dramatiq` in production). Nothing here does I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def offset_clock(seconds: float) -> Clock:
    """This host's wall clock read ``seconds`` ahead (behind, if negative): a drifted host,
    for testing only (``BILLING_CLOCK_OFFSET_SECONDS``, the chaos run)."""
    offset = timedelta(seconds=seconds)

    def drifted() -> datetime:
        return datetime.now(UTC) + offset

    return drifted


class Dispatcher(Protocol):
    """Puts work on the queue. Messages carry only ids; the database is the truth."""

    def charge(self, attempt_ids: Sequence[int]) -> None: ...

    def reconcile(self, attempt_ids: Sequence[int]) -> None: ...

    def backlog(self) -> int | None:
        """Messages waiting in the queue, or None when the broker cannot say."""
        ...
