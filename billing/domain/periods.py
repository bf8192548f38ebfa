"""Billing periods: when a subscription falls due next (cron in its own timezone). Pure.

Decides: the next due time of a schedule, which missed periods a late scheduler opens,
where the next charge goes after a schedule or timezone change, and the local wall-clock
key that names a period. Must never: read the clock (``now`` is passed in), touch the
database, or let one local period (a wall time that occurs twice when clocks fall back)
fire twice for a daily, weekly or monthly schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from billing.errors import ValidationError

#: A schedule must fire at least once within this long, wherever one starts looking.
MAX_GAP = timedelta(days=366)
#: Where the "fires within 366 days" check starts looking: one start in each year of a
#: leap cycle, so a 29 February schedule (every four years) is refused too.
_GAP_PROBES = tuple(datetime(year, 1, 1) for year in (2025, 2026, 2027, 2028))  # noqa: DTZ001
#: Days in each month (February: the common year, as a schedule must work every year).
_MONTH_DAYS = dict(enumerate((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))


def validate_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown timezone {name!r}; use an IANA name like Europe/Moscow"
        ) from None


def validate_cron(expression: str) -> str:
    """The expression with its spaces normalised, or ValidationError: not 5 fields, not
    cron, or never firing within 366 days (``0 3 30 2 *``, ``0 3 29 2 *``)."""
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
    for start in _GAP_PROBES:
        try:
            following: datetime = croniter(cleaned, start).get_next(datetime)
        except CroniterBadDateError:
            following = start + 2 * MAX_GAP
        if following - start > MAX_GAP:
            raise ValidationError(
                f"invalid cron schedule {expression!r}: it does not fire at least once "
                "every 366 days (a date that does not exist, like 30 February, or only "
                "29 February)"
            )
    return cleaned


def schedule_warnings(expression: str) -> list[str]:
    """Plain-language warnings about a valid schedule that probably does not mean what it
    says: a day of the month that some of its months lack (``0 3 31 * *``)."""
    fields = croniter(expression).expanded
    days, months, weekdays = fields[2], fields[3], fields[4]
    if days == ["*"] or weekdays != ["*"] or "l" in [str(d).lower() for d in days]:
        return []  # every day, or OR-ed with a weekday, or the last day: no month is skipped
    first_day = min(int(d) for d in days)
    in_months = range(1, 13) if months == ["*"] else [int(m) for m in months]
    if all(_MONTH_DAYS[m] >= first_day for m in in_months):
        return []
    return [
        f"{expression!r} skips months with fewer than {first_day} days; "
        "use 'L' for the last day of the month"
    ]


@lru_cache(maxsize=4096)
def _every_hour(expression: str) -> bool:
    """True when the schedule fires in every hour of the day (``0 * * * *``,
    ``*/15 * * * *``): such a schedule bills both real hours when a wall hour repeats."""
    hours = croniter(expression).expanded[1]
    return hours == ["*"] or set(hours) >= set(range(24))


def _second_occurrence(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether ``moment`` is the repeat of a wall time (the second 02:30 when clocks fall
    back)."""
    local = moment.astimezone(UTC).astimezone(zone)
    return local.replace(fold=0).utcoffset() != local.utcoffset()


@lru_cache(maxsize=65_536)
def next_due(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that the schedule fires, in UTC.

    The cron expression is read in the subscription's timezone, so "0 3 1 * *" in
    Europe/Moscow is 03:00 Moscow time on the 1st whatever the server's zone is.
    A wall time that occurs twice (clocks fall back) fires once, at its first occurrence,
    as cron does; a schedule that fires every hour keeps both real hours. A wall time
    that does not exist (clocks spring forward) fires once, at the end of the gap
    (croniter moves 02:30 to 03:00).
    Pure, so it is memoised: at month start most subscriptions share schedule, zone and
    period, and croniter costs a few hundred microseconds a call.
    """
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    zone = validate_timezone(timezone)
    times = croniter(expression, after.astimezone(zone))
    following: datetime = times.get_next(datetime)
    if not _every_hour(expression):
        while _second_occurrence(following, zone):
            following = times.get_next(datetime)
    return following.astimezone(UTC)


def local_period_key(expression: str, timezone: str, period_start: datetime) -> str:
    """The name of a billing period on the customer's wall clock, e.g. "2026-10-25T02:30".

    Stored on the invoice under UNIQUE (subscription, local period): one wall-clock period
    can never open two invoices. Schedules that fire every hour carry the UTC offset too
    ("2026-10-25T02:30+01:00"), so both real hours of a repeated hour stay two periods.
    """
    local = period_start.astimezone(validate_timezone(timezone))
    key = local.strftime("%Y-%m-%dT%H:%M")
    if _every_hour(expression):
        key += local.isoformat(timespec="minutes")[16:]
    return key


def first_due(expression: str, timezone: str, now: datetime, start_at: datetime | None) -> datetime:
    """When a new subscription is first charged: at ``start_at`` if given, else the next run."""
    if start_at is not None:
        if start_at.tzinfo is None:
            raise ValidationError(
                "--start-at must include a UTC offset, e.g. 2026-12-01T03:00:00+03:00"
            )
        return start_at.astimezone(UTC)
    return next_due(expression, timezone, now)


def at_or_after(expression: str, timezone: str, moment: datetime) -> datetime:
    """The first time at or after ``moment`` that the schedule fires, in UTC."""
    return next_due(expression, timezone, moment - timedelta(microseconds=1))


# -- a late scheduler and schedule changes ---------------------------------------------------


@dataclass(frozen=True)
class DuePeriods:
    """What one scheduler pass does for one subscription whose period is due."""

    #: The period to invoice now.
    open: datetime
    #: Missed periods not invoiced (catch-up "latest"), oldest first.
    skipped: tuple[datetime, ...]
    #: The subscription's next due time after ``open``.
    next_charge_at: datetime


def due_periods(
    expression: str, timezone: str, due: datetime, now: datetime, *, catch_up_all: bool
) -> DuePeriods:
    """The period to open for a subscription due at ``due`` (``due <= now``).

    ``catch_up_all``: every missed period is opened, one per step (a later step of the same
    pass opens the next). Otherwise only the most recent period that has started by ``now``
    is opened and the earlier missed ones are returned as skipped: after an outage a
    customer is charged once, not once per hour the scheduler was down.
    """
    period = due
    following = next_due(expression, timezone, period)
    if catch_up_all:
        return DuePeriods(period, (), following)
    skipped: list[datetime] = []
    while following <= now:
        skipped.append(period)
        period = following
        following = next_due(expression, timezone, period)
    return DuePeriods(period, tuple(skipped), following)


@dataclass(frozen=True)
class ScheduleChange:
    """Where a subscription goes after its schedule or timezone changed."""

    #: A period that was already due under the old schedule and must still be invoiced.
    open_due: datetime | None
    #: The new next due time (None: no further period opens, e.g. cancel at period end).
    next_charge_at: datetime | None


def next_charge_after_change(
    old: tuple[str, str],
    new: tuple[str, str],
    next_charge_at: datetime | None,
    now: datetime,
    *,
    period_started: bool,
    billable: bool,
) -> ScheduleChange:
    """The next step after the schedule or timezone changes from ``old`` to ``new``
    (each ``(cron, timezone)``).

    Time already invoiced (paid or still open) is never billed again: the new schedule
    starts where the current period ends, at its first time at or after the old next due
    time. A period already due but not yet invoiced (``next_charge_at <= now``) is still
    invoiced (``open_due``) and the new schedule starts where that period ends. Before the
    first period has started (``period_started`` false) or while not billable (paused),
    the new schedule simply starts at its next time after ``now``.
    """
    if next_charge_at is None:
        return ScheduleChange(None, None)
    if next_charge_at <= now and billable:
        period_end = next_due(*old, next_charge_at)
        return ScheduleChange(next_charge_at, at_or_after(*new, period_end))
    if next_charge_at > now and period_started:
        return ScheduleChange(None, at_or_after(*new, next_charge_at))
    return ScheduleChange(None, next_due(*new, now))
