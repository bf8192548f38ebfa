"""Billing periods: when a subscription falls due next (cron in its own timezone). Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

from billing.errors import ValidationError


def validate_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown timezone {name!r}; use an IANA name like Europe/Moscow"
        ) from None


def validate_cron(expression: str) -> str:
    cleaned = " ".join(expression.split())
    if len(cleaned.split(" ")) != 5:
        raise ValidationError(
            f"invalid cron schedule {expression!r}: "
            "expected 5 fields (minute hour day month weekday)"
        )
    try:
        croniter(cleaned)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValidationError(f"invalid cron schedule {expression!r}: {exc}") from None
    return cleaned


@lru_cache(maxsize=65_536)
def next_due(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that the schedule fires, in UTC.

    The cron expression is read in the subscription's timezone, so "0 3 1 * *" in
    Europe/Moscow is 03:00 Moscow time on the 1st whatever the server's zone is.
    Pure, so it is memoised: at month start most subscriptions share schedule, zone and
    period, and croniter costs a few hundred microseconds a call.
    """
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    zone = validate_timezone(timezone)
    local = after.astimezone(zone)
    following: datetime = croniter(expression, local).get_next(datetime)
    return following.astimezone(UTC)


def first_due(expression: str, timezone: str, now: datetime, start_at: datetime | None) -> datetime:
    """When a new subscription is first charged: at ``start_at`` if given, else the next run."""
    if start_at is not None:
        if start_at.tzinfo is None:
            raise ValidationError(
                "--start-at must include a UTC offset, e.g. 2026-12-01T03:00:00+03:00"
            )
        return start_at.astimezone(UTC)
    return next_due(expression, timezone, now)
