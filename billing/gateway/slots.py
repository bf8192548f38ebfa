"""When the next gateway call may be sent: the slot arithmetic of the sliding-log limiters.

A limiter keeps the times of the slots it gave out (grants now, or reservations a little in
the future), oldest first. A new slot is always placed after every slot already given out,
at the earliest time ``s`` that keeps every closed window ``[s - window, s]`` at or below
``limit`` slots and ``s`` at least ``spacing`` after the latest one. Placing slots in order
(a queue, never a gap filled later) is what makes that one check enough: every window that
holds the new slot ends at or after it, and the ones ending later hold no slot after it yet.

:func:`next_slot` is the rule; the Redis limiter's Lua script applies the same rule on the
Redis server's clock (:data:`billing.gateway.limiters._RESERVE_LUA`), the in-memory limiter
calls it directly. :func:`late` says whether a caller that waited for its slot woke too long
after it to still send on it. This module is pure: it reads no clock, never sleeps, never
calls Redis or the gateway, and never decides to send without a slot.
"""

from __future__ import annotations

from collections.abc import Sequence


def next_slot(
    slots: Sequence[float], now: float, *, limit: int, window: float, spacing: float
) -> float:
    """The earliest time at or after ``now`` (and after every slot in ``slots``, sorted
    oldest first) at which one more slot keeps at most ``limit`` slots in any closed window
    of ``window`` seconds and every two slots at least ``spacing`` apart.

    Slots older than ``now - window`` may be left out of ``slots``: they cannot share a
    window with a slot at or after ``now``.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    slot = now
    if slots:
        slot = max(slot, slots[-1] + spacing)
        if len(slots) >= limit:
            # The limit-th latest slot must fall out of the new slot's window (strictly).
            slot = max(slot, _after(slots[-limit] + window))
    return slot


def late(woke_at: float, slot: float, max_lag: float) -> bool:
    """True when a caller waking at ``woke_at`` for the slot at ``slot`` (one clock) is more
    than ``max_lag`` seconds behind it: sent now, the call could arrive together with the
    slots after it, so it must take a new slot instead."""
    return woke_at - slot > max_lag


def _after(t: float) -> float:
    """The next representable time after ``t`` at microsecond resolution (the Redis log's)."""
    return (round(t * 1_000_000) + 1) / 1_000_000
