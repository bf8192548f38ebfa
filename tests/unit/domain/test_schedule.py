"""Next billing time: the cron expression read in the subscription's own timezone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.domain.periods import next_due, validate_cron
from billing.errors import ValidationError


def T(*parts: int) -> datetime:
    year, month, day, *rest = parts
    return datetime(year, month, day, *rest, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # 03:00 Moscow on the 1st is 00:00 UTC
        ("0 3 1 * *", "Europe/Moscow", T(2026, 11, 24), T(2026, 12, 1, 0, 0)),
        # strictly after: a due time is not returned again
        ("0 3 1 * *", "Europe/Moscow", T(2026, 12, 1, 0, 0), T(2027, 1, 1, 0, 0)),
        # New York in winter (UTC-5) and in summer (UTC-4)
        ("0 9 15 * *", "America/New_York", T(2026, 1, 1), T(2026, 1, 15, 14, 0)),
        ("0 9 15 * *", "America/New_York", T(2026, 7, 1), T(2026, 7, 15, 13, 0)),
        # the 31st: months without one are skipped
        ("0 0 31 * *", "UTC", T(2026, 1, 31, 1), T(2026, 3, 31, 0, 0)),
        # 02:30 does not exist in Berlin on the spring-forward day: it runs at 03:00 local
        ("30 2 * * *", "Europe/Berlin", T(2026, 3, 28, 12), T(2026, 3, 29, 1, 0)),
    ],
)
def test_next_due(cron: str, zone: str, after: datetime, expected: datetime) -> None:
    assert next_due(cron, zone, after) == expected


@pytest.mark.parametrize("cron", ["", "* * *", "60 * * * *", "0 3 1 * * *", "monthly"])
def test_invalid_cron_is_refused(cron: str) -> None:
    with pytest.raises(ValidationError, match="invalid cron"):
        validate_cron(cron)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_due("0 3 1 * *", "UTC", datetime(2026, 1, 1))
