"""Send leases on one clock: when a send's lease began, whether it is stale, and how long
a worker may still start the gateway call.

It decides the lease arithmetic (:class:`LeaseTerms`, pure) and where lease times come
from (:data:`LeaseClock`): in production the database's clock, read in the transaction
that claims or judges the attempt, so workers and schedulers on hosts whose wall clocks
drift apart agree on when a lease began and when it ran out. It must never compare the
wall clocks of two hosts, and never call the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, func, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from billing.domain.model import AttemptState
from billing.services.ports import Clock
from billing.storage.tables import ChargeAttempt

#: The reason of an attempt settled as "the gateway never received it".
NOT_RECEIVED = "not_received"
#: Settled as "no money taken"; with ``next_check_at`` set, one more status check is due.
RECHECKED_STATES = (AttemptState.FAILED.value, AttemptState.DECLINED.value)


#: The one clock lease times are read from, inside the caller's transaction.
LeaseClock = Callable[[Session], datetime]


def database_lease_clock(session: Session) -> datetime:
    """The database server's current time (UTC, aware): one clock for every host."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        value = session.scalar(select(func.clock_timestamp()))
        if not isinstance(value, datetime):  # pragma: no cover - the driver returns datetimes
            raise TypeError("the database returned no time")
        return value.astimezone(UTC)
    # SQLite: one file on one host; 'now' is UTC with milliseconds.
    raw = session.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


def clock_lease(clock: Clock) -> LeaseClock:
    """Lease times from ``clock`` (tests drive a manual clock; one process, one clock)."""

    def read(_session: Session) -> datetime:
        return clock()

    return read


@dataclass(frozen=True)
class LeaseTerms:
    """A send's lease: ``stale_after`` from its start the send is settled by order status;
    the gateway call may take up to ``longest_call`` (pool + connect + write + read)."""

    stale_after: timedelta
    longest_call: timedelta

    def __post_init__(self) -> None:
        if self.longest_call >= self.stale_after:
            raise ValueError("the longest gateway call must be shorter than the send lease")

    @property
    def send_window(self) -> timedelta:
        """From the lease start, how long a worker may still *start* the call: any later,
        and the call could still be under way when the send is ruled stale."""
        return self.stale_after - self.longest_call

    def remaining(self, elapsed: timedelta) -> timedelta:
        """What is left of the send window ``elapsed`` after the claim (may be negative)."""
        return self.send_window - elapsed

    def stale_before(self, lease_now: datetime) -> datetime:
        """Sends whose lease began before this are stale (``lease_now`` from the lease clock)."""
        return lease_now - self.stale_after

    def is_stale(self, sent_at: datetime, lease_now: datetime) -> bool:
        return lease_now - sent_at >= self.stale_after

    def recheck_at(self, lease_now: datetime) -> datetime:
        """When an attempt just ruled "not received" is asked about once more: after any
        call that might still have been started has certainly ended."""
        return lease_now + self.longest_call

    def recheck_counts(self, sent_at: datetime, lease_now: datetime) -> bool:
        """Whether "no such order", asked at ``lease_now``, ends the re-check: a call started
        by the end of the send window has ended by the lease's end; one more longest call
        covers a worker that stalled between its last look at the clock and the call."""
        return lease_now >= sent_at + self.stale_after + self.longest_call


def recheck_pending(invoice_id: InstrumentedAttribute[int] | int) -> ColumnElement[bool]:
    """The invoice has an attempt ruled "not received" still to be asked about once more:
    no new attempt (a new orderNumber, scheduled or manual) may go out before that answer."""
    return exists().where(
        ChargeAttempt.invoice_id == invoice_id,
        ChargeAttempt.state.in_(RECHECKED_STATES),
        ChargeAttempt.next_check_at.is_not(None),
    )
