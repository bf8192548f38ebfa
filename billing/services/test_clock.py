"""The test clock, as operators move it in test mode: show, set, advance (running passes).

Decides: whether the clock may move (test mode only, and only forward: billing already
recorded at a time must not end up in the future), and the steps of an advance: the clock
stops at every moment something falls due (a period, a retry, a status check, a grace
period's end, an upcoming-invoice notice) up to the target, and the caller's pass runs at
each stop, so a year of billing and dunning happens in order within minutes. Must never
be usable when test mode is off (one clear error, nothing changed) or move the wall clock
of anything else. A move made by a person (``actor`` given) is audited with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select

from billing.domain.durations import parse_duration
from billing.domain.model import BILLABLE_STATUSES, AttemptState, InvoiceStatus
from billing.errors import ConfigurationError, ConflictError, ValidationError
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.read.views import iso
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

#: Stops of one advance at most (a minutely schedule over a year would be far more).
MAX_STEPS = 5000


class SettableClock(Protocol):
    def __call__(self) -> datetime: ...

    def set(self, when: datetime) -> datetime: ...


class TestClockActions:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        *,
        enabled: bool,
        upcoming_lead: timedelta | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.enabled = enabled
        self.upcoming_lead = upcoming_lead

    def _settable(self) -> SettableClock:
        if not self.enabled:
            raise ConfigurationError(
                "the test clock works only in test mode (BILLING_TEST_MODE=true); "
                "a live system runs on real time"
            )
        setter = getattr(self.clock, "set", None)
        if not callable(setter):
            raise ConfigurationError("this process was built with a clock that cannot be moved")
        return self.clock  # type: ignore[return-value]

    def show(self) -> dict[str, Any]:
        self._settable()
        return {"now": iso(self.clock()), "test_mode": True}

    def set(
        self,
        when: str,
        step: Callable[[], None] | None = None,
        *,
        actor: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        clock = self._settable()
        who = _who(actor, reason)
        target = parse_time(when)
        now = clock()
        if target < now:
            raise ConflictError(
                f"the test clock only moves forward: it is {iso(now)}, {when!r} is earlier"
            )
        self._audit(now, target, who)
        return self._move(clock, now, target, step)

    def advance(
        self,
        by: str,
        step: Callable[[], None] | None = None,
        *,
        actor: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        clock = self._settable()
        who = _who(actor, reason)
        try:
            delta = parse_duration(by)
        except ConfigurationError as exc:
            raise ValidationError(str(exc)) from None
        if delta <= timedelta(0):
            raise ValidationError("advance by a positive duration, e.g. 30d")
        now = clock()
        self._audit(now, now + delta, who)
        return self._move(clock, now, now + delta, step)

    def _audit(self, now: datetime, target: datetime, who: tuple[str, str] | None) -> None:
        """The audit row of a person's move, written before the clock starts moving."""
        if who is None:
            return
        with self.db.transaction() as session:
            record_event(
                session,
                now,
                "test_clock_moved",
                f"test clock {iso(now)} -> {iso(target)}: {who[1]}",
                actor=who[0],
            )

    def _move(
        self,
        clock: SettableClock,
        now: datetime,
        target: datetime,
        step: Callable[[], None] | None,
    ) -> dict[str, Any]:
        stops = 0
        if step is not None:
            step()  # whatever is due right now first
        while True:
            due = self.next_due(now, target) if step is not None else None
            now = clock.set(due or target)
            stops += 1
            if step is not None:
                step()
            if due is None or stops >= MAX_STEPS:
                break
        if now < target:
            now = clock.set(target)
        return {"now": iso(now), "stops": stops, "test_mode": True}

    def next_due(self, after: datetime, until: datetime) -> datetime | None:
        """The first moment in (after, until) when something falls due, if any."""
        billable = [s.value for s in BILLABLE_STATUSES]
        with self.db.transaction() as session:
            candidates = [
                session.scalar(
                    select(func.min(Subscription.next_charge_at)).where(
                        Subscription.status.in_(billable), Subscription.next_charge_at > after
                    )
                ),
                session.scalar(
                    select(func.min(Invoice.next_attempt_at)).where(
                        Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at > after
                    )
                ),
                session.scalar(
                    select(func.min(Subscription.cancel_at)).where(Subscription.cancel_at > after)
                ),
                session.scalar(
                    select(func.min(Subscription.ends_at)).where(Subscription.ends_at > after)
                ),
                session.scalar(
                    select(func.min(ChargeAttempt.next_check_at)).where(
                        ChargeAttempt.next_check_at > after
                    )
                ),
            ]
        if self.upcoming_lead is not None:  # invoice.upcoming is due before each charge
            with self.db.transaction() as session:
                charge = session.scalar(
                    select(func.min(Subscription.next_charge_at)).where(
                        Subscription.status.in_(billable),
                        Subscription.next_charge_at > after + self.upcoming_lead,
                    )
                )
            candidates.append(None if charge is None else charge - self.upcoming_lead)
        found = [c for c in candidates if c is not None and c < until]
        return min(found) if found else None


def _who(actor: str | None, reason: str | None) -> tuple[str, str] | None:
    if actor is None:
        return None
    return clean_actor(actor), clean_reason(reason)


def settling_step(
    db: Database, passes: Sequence[Callable[[], object]], *, settle_for: float = 60.0
) -> Callable[[], None]:
    """A step for :meth:`TestClockActions.advance`: run ``passes`` (upcoming, scheduler,
    webhooks) then wait, up to ``settle_for`` seconds, for the workers to send every charge
    those passes enqueued, so each stop's billing is done before the clock moves on."""

    def in_flight() -> int:
        with db.transaction() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ChargeAttempt)
                    .where(ChargeAttempt.state.in_([AttemptState.PENDING, AttemptState.SENDING]))
                )
                or 0
            )

    def step() -> None:
        for run_pass in passes:
            run_pass()
        deadline = time.monotonic() + settle_for
        while time.monotonic() < deadline and in_flight():
            time.sleep(0.2)

    return step


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"invalid time {text!r}; use ISO 8601, e.g. 2027-01-01T00:00:00+00:00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
