"""Daylight saving time: a wall time that occurs twice is billed once; one that does not
exist is billed once too. Both zones, both transitions, through the real scheduler pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.domain.periods import local_period_key, next_due
from tests.support.period_world import period_world


def T(*parts: int) -> datetime:
    year, month, day, *rest = parts
    return datetime(year, month, day, *rest, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # Berlin falls back on 2026-10-25: 02:30 CEST (00:30Z), then 02:30 CET (01:30Z)
        ("30 2 * * *", "Europe/Berlin", T(2026, 10, 25, 0, 30), T(2026, 10, 26, 1, 30)),
        ("30 2 25 * *", "Europe/Berlin", T(2026, 10, 25, 0, 30), T(2026, 11, 25, 1, 30)),
        # New York falls back on 2026-11-01 (a Sunday): 01:30 EDT (05:30Z), 01:30 EST (06:30Z)
        ("30 1 * * 0", "America/New_York", T(2026, 11, 1, 5, 30), T(2026, 11, 8, 6, 30)),
        ("30 1 * * *", "America/New_York", T(2026, 11, 1, 5, 30), T(2026, 11, 2, 6, 30)),
        # hourly schedules keep both real hours
        ("0 * * * *", "Europe/Berlin", T(2026, 10, 25, 0, 0), T(2026, 10, 25, 1, 0)),
        ("*/15 * * * *", "Europe/Berlin", T(2026, 10, 25, 0, 45), T(2026, 10, 25, 1, 0)),
        ("0 * * * *", "America/New_York", T(2026, 11, 1, 5, 0), T(2026, 11, 1, 6, 0)),
        # spring forward: 02:30 does not exist, it fires at 03:00 once
        ("30 2 * * *", "Europe/Berlin", T(2026, 3, 28, 12), T(2026, 3, 29, 1, 0)),
        ("30 2 * * *", "Europe/Berlin", T(2026, 3, 29, 1, 0), T(2026, 3, 30, 0, 30)),
        ("30 2 * * *", "America/New_York", T(2026, 3, 7, 12), T(2026, 3, 8, 7, 0)),
        ("30 2 * * *", "America/New_York", T(2026, 3, 8, 7, 0), T(2026, 3, 9, 6, 30)),
    ],
)
def test_next_due_across_dst(cron: str, zone: str, after: datetime, expected: datetime) -> None:
    assert next_due(cron, zone, after) == expected


@pytest.mark.parametrize(
    ("cron", "zone", "first", "second", "same"),
    [
        ("30 2 * * *", "Europe/Berlin", T(2026, 10, 25, 0, 30), T(2026, 10, 25, 1, 30), True),
        ("30 1 * * 0", "America/New_York", T(2026, 11, 1, 5, 30), T(2026, 11, 1, 6, 30), True),
        ("0 * * * *", "Europe/Berlin", T(2026, 10, 25, 0, 0), T(2026, 10, 25, 1, 0), False),
        ("*/15 * * * *", "America/New_York", T(2026, 11, 1, 5), T(2026, 11, 1, 6), False),
    ],
)
def test_local_period_key_names_one_wall_clock_period(
    cron: str, zone: str, first: datetime, second: datetime, same: bool
) -> None:
    assert (local_period_key(cron, zone, first) == local_period_key(cron, zone, second)) is same


def test_local_period_key_is_the_wall_clock_time() -> None:
    assert local_period_key("30 2 * * *", "Europe/Berlin", T(2026, 10, 25, 1, 30)) == (
        "2026-10-25T02:30"
    )
    assert local_period_key("0 * * * *", "Europe/Berlin", T(2026, 10, 25, 1)) == (
        "2026-10-25T02:00+01:00"
    )


# -- through the scheduler pass --------------------------------------------------------------

FALL_BACK = [
    # cron, zone, clock start, clock end, the local periods billed (with their offset)
    (
        "30 2 * * *",
        "Europe/Berlin",
        T(2026, 10, 24, 12),
        T(2026, 10, 26, 12),
        ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
    ),
    (
        "30 2 25 * *",
        "Europe/Berlin",
        T(2026, 10, 24, 12),
        T(2026, 10, 26, 12),
        ["2026-10-25T02:30+02:00"],
    ),
    (
        "30 1 * * 0",
        "America/New_York",
        T(2026, 10, 31, 12),
        T(2026, 11, 2, 12),
        ["2026-11-01T01:30-04:00"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        T(2026, 10, 31, 12),
        T(2026, 11, 2, 0),
        ["2026-11-01T01:30-04:00"],
    ),
]


@pytest.mark.parametrize(("cron", "zone", "start", "end", "billed"), FALL_BACK)
def test_a_repeated_wall_time_is_invoiced_and_charged_once(
    tmp_path: Path, cron: str, zone: str, start: datetime, end: datetime, billed: list[str]
) -> None:
    with period_world(tmp_path, start) as world:
        sub_id = world.subscribe(cron, zone)
        world.run_until(end)
        assert world.local_periods(sub_id, zone) == billed
        assert [a.state for a in world.attempts(sub_id)] == ["paid"] * len(billed)
        assert len(world.gateway.payment_calls) == len(billed)


@pytest.mark.parametrize(
    ("cron", "zone", "start", "repeated"),
    [
        ("0 * * * *", "Europe/Berlin", T(2026, 10, 24, 22), ["02:00+02:00", "02:00+01:00"]),
        (
            "*/15 * * * *",
            "America/New_York",
            T(2026, 11, 1, 4),
            [f"01:{m}-0{h}:00" for h in (4, 5) for m in ("00", "15", "30", "45")],
        ),
    ],
)
def test_hourly_schedules_bill_both_real_hours(
    tmp_path: Path, cron: str, zone: str, start: datetime, repeated: list[str]
) -> None:
    with period_world(tmp_path, start) as world:
        sub_id = world.subscribe(cron, zone)
        world.run_until(start + timedelta(hours=5), step=timedelta(minutes=15))
        periods = world.local_periods(sub_id, zone)
        hour = repeated[0][:2]
        assert [p[11:] for p in periods if p[11:13] == hour] == repeated
        assert len(periods) == len(set(periods))
        # every real quarter-hour / hour in the window was billed exactly once
        step = 15 if cron.startswith("*/15") else 60
        assert len(periods) == 5 * 60 // step
        assert len(world.gateway.payment_calls) == len(periods)


@pytest.mark.parametrize(
    ("zone", "start", "billed"),
    [
        (
            "Europe/Berlin",
            T(2026, 3, 27, 12),
            ["2026-03-28T02:30+01:00", "2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"],
        ),
        (
            "America/New_York",
            T(2026, 3, 6, 12),
            ["2026-03-07T02:30-05:00", "2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00"],
        ),
    ],
)
def test_a_skipped_wall_time_is_still_billed_once_that_day(
    tmp_path: Path, zone: str, start: datetime, billed: list[str]
) -> None:
    with period_world(tmp_path, start) as world:
        sub_id = world.subscribe("30 2 * * *", zone)
        world.run_until(start + timedelta(days=3))
        assert world.local_periods(sub_id, zone) == billed
        assert len(world.gateway.payment_calls) == 3


def test_one_local_period_never_opens_a_second_invoice(tmp_path: Path) -> None:
    """The second line of defence: a subscription that was already advanced to the repeat
    of 02:30 (by an older version, or by hand) gets no second invoice for that night."""
    with period_world(tmp_path, T(2026, 10, 25, 0)) as world:
        sub_id = world.subscribe("30 2 * * *", "Europe/Berlin")
        world.run_until(T(2026, 10, 25, 1))
        world.set_next_charge(sub_id, T(2026, 10, 25, 1, 30))  # 02:30 CET, the repeat
        world.run_until(T(2026, 10, 25, 3))
        assert world.local_periods(sub_id, "Europe/Berlin") == ["2026-10-25T02:30+02:00"]
        assert len(world.gateway.payment_calls) == 1
        assert world.sub(sub_id).next_charge_at == T(2026, 10, 26, 1, 30)
