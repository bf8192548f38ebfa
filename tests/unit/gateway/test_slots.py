"""The slot arithmetic of the sliding-log limiters (billing.gateway.slots), table-driven."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.gateway.slots import late, next_slot
from tests.support.rate_window import max_in_closed_window

US = 1e-6


@pytest.mark.parametrize(
    ("slots", "now", "limit", "window", "spacing", "expected"),
    [
        # Nothing given out: now.
        ([], 10.0, 3, 1.1, 0.0, 10.0),
        # Room in the window, no spacing: now.
        ([9.5, 9.9], 10.0, 3, 1.1, 0.0, 10.0),
        # Full window: just after the limit-th latest slot leaves it (closed window).
        ([9.5, 9.6, 9.9], 10.0, 3, 1.1, 0.0, 9.5 + 1.1 + US),
        # Only the limit-th latest counts, older ones are already out of that window.
        ([8.0, 9.5, 9.6, 9.9], 10.0, 3, 1.1, 0.0, 9.5 + 1.1 + US),
        # Spacing after the latest slot, when the window has room.
        ([9.999], 10.0, 3, 1.1, 0.01, 10.009),
        # Slots booked in the future: the new one queues behind them, spaced.
        ([10.2, 10.4], 10.0, 5, 1.1, 0.1, 10.5),
        # Future slots fill the window: after the limit-th latest leaves it.
        ([10.0, 10.1, 10.2], 10.0, 3, 1.0, 0.05, 11.0 + US),
        # The window rule and the spacing rule: the later of the two wins.
        ([9.0, 9.95], 10.0, 2, 1.0, 0.5, 10.45),
        # Limit 1: one slot per window.
        ([10.0], 10.0, 1, 1.1, 0.0, 11.1 + US),
    ],
)
def test_next_slot(
    slots: list[float], now: float, limit: int, window: float, spacing: float, expected: float
) -> None:
    slot = next_slot(slots, now, limit=limit, window=window, spacing=spacing)
    assert slot == pytest.approx(expected, abs=1e-9)
    assert slot >= now
    if slots:
        assert slot >= slots[-1]


def test_next_slot_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit"):
        next_slot([], 0.0, limit=0, window=1.0, spacing=0.0)


@pytest.mark.parametrize(
    ("woke_at", "slot", "max_lag", "expected"),
    [
        (10.0, 10.0, 0.05, False),  # on time
        (9.99, 10.0, 0.05, False),  # early (a coarse clock): never late
        (10.25, 10.0, 0.25, False),  # exactly the lag allowed
        (10.0501, 10.0, 0.05, True),
        (10.3, 10.0, 0.05, True),
        (10.0, 10.0, 0.0, False),  # max_lag 0: only exactly on time
        (10.000001, 10.0, 0.0, True),
    ],
)
def test_late(woke_at: float, slot: float, max_lag: float, expected: bool) -> None:
    assert late(woke_at, slot, max_lag) is expected


@given(
    limit=st.integers(1, 20),
    window=st.sampled_from([0.5, 1.0, 1.1]),
    spacing=st.sampled_from([0.0, 0.01, 0.05]),
    gaps=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=120),
)
def test_booked_slots_never_overfill_a_window(
    limit: int, window: float, spacing: float, gaps: list[float]
) -> None:
    """Callers asking at any times, each booking the next slot: every closed window of the
    limiter's length holds at most the limit, and slots are in order and spaced."""
    now, slots = 0.0, []
    for gap in gaps:
        now += gap
        recent = [s for s in slots if s >= now - window]
        slots.append(next_slot(recent, now, limit=limit, window=window, spacing=spacing))
    assert max_in_closed_window(slots, window) <= limit
    assert all(b - a >= spacing - 1e-9 for a, b in itertools.pairwise(slots))
