"""One scheduler pass: what is due at ``now``, claimed in batches, enqueued after commit.

Several schedulers may run at once: rows are claimed with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (SQLite takes its write lock at BEGIN), and UNIQUE (subscription, period),
UNIQUE (subscription, local wall-clock period) and the one-in-flight-attempt index are the
last line against double scheduling: an invoice that would break one is never inserted.
A scheduler that fell behind opens what the catch-up policy says (by default only the most
recent missed period; the earlier ones are recorded as ``period_skipped`` events).
Work that could not be enqueued (Redis down, lost message) is found again by a later pass
because the database, not the queue, says what is outstanding.
Stale sends are judged on the lease clock (the database's), never on this host's clock
against another host's; an invoice whose last attempt was ruled "not received" gets no new
attempt until that attempt has been asked about once more (``next_check_at``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from billing.domain.dunning_policy import DunningPolicy
from billing.domain.model import (
    CHARGEABLE_STATUSES,
    IN_FLIGHT_STATES,
    AttemptState,
    AttemptTrigger,
    InvoiceStatus,
    SubscriptionStatus,
    new_order_number,
)
from billing.gateway.accounts import account_names
from billing.gateway.port import Gateway
from billing.services.lease import LeaseClock, clock_lease, recheck_pending
from billing.services.lifecycle import cancel_subscription
from billing.services.pipeline.invoice_opening import Cursor, InvoiceOpening, after_key
from billing.services.pipeline.redelivery import Redelivery
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.storage.bulk import bulk_insert, bulk_update
from billing.storage.circuit_row import load_circuits, paused_accounts
from billing.storage.database import Database, StatisticsRefresh
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.scheduler")
#: Attempts that keep an invoice from being charged again: in flight, or waiting for an
#: operator (it may have taken the money; only ``billing resolve`` or its order status
#: settles it).
BLOCKING_STATES = IN_FLIGHT_STATES | {AttemptState.NEEDS_OPERATOR}


#: A pass that opened (created) at least this many invoices (attempts) refreshes the
#: planner's statistics of that table at once (see :meth:`Database.refresh_statistics`):
#: the claim and settlement queries' plans are only as good as the row estimates, and a
#: month-start burst makes them stale long before autovacuum samples the table.
REFRESH_STATISTICS_AFTER = 10_000
#: A pass creates the attempts of the invoices it has opened every this many invoices, so a
#: burst's first charges leave within seconds instead of after the whole burst is invoiced.
OPEN_BEFORE_CHARGING = 5_000


@dataclass
class PassReport:
    invoices_opened: int = 0
    attempts_created: int = 0
    requeued: int = 0
    reconciles: int = 0
    canceled: int = 0
    charging_paused: bool = False
    #: Merchant accounts whose charging is paused by their circuit breaker.
    paused_accounts: list[str] = field(default_factory=list)
    probe: str | None = None
    enqueue_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Scheduler(InvoiceOpening, Redelivery):
    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        policy: DunningPolicy,
        *,
        gateway: Gateway | None = None,
        clock: Clock = system_clock,
        batch_size: int = 500,
        requeue_after: timedelta = timedelta(minutes=5),
        stale_sending_after: timedelta = timedelta(minutes=2),
        lease_clock: LeaseClock | None = None,
        refresh_statistics_after: int = REFRESH_STATISTICS_AFTER,
        open_before_charging: int = OPEN_BEFORE_CHARGING,
    ) -> None:
        self.db = db
        self.refresh_statistics_after = refresh_statistics_after
        self.open_before_charging = open_before_charging
        self.dispatcher = dispatcher
        self.policy = policy
        self.gateway = gateway
        self.clock = clock
        self.batch_size = batch_size
        self.requeue_after = requeue_after
        self.stale_sending_after = stale_sending_after
        self.lease_clock = lease_clock or clock_lease(clock)

    def run_pass(self) -> PassReport:
        """Cancel what ran out of grace, probe paused accounts, then open due invoices and
        create their attempts in turns: at month start the first charges leave after the
        first ``open_before_charging`` invoices, not after the whole burst is invoiced."""
        now = self.clock()
        report = PassReport()
        report.canceled = self.cancel_due(now)
        paused = self.probe_paused(now, report)
        report.paused_accounts = sorted(paused)
        charging = not paused.issuperset(account_names(self.gateway))  # some account may charge
        report.charging_paused = not charging
        invoices = StatisticsRefresh(self.db, Invoice.__tablename__, self.refresh_statistics_after)
        attempts = StatisticsRefresh(
            self.db, ChargeAttempt.__tablename__, self.refresh_statistics_after
        )
        since_charging = 0
        for opened in self.open_due_batches(now):
            report.invoices_opened += opened
            invoices.wrote(opened)
            since_charging += opened
            if charging and since_charging >= self.open_before_charging:
                since_charging = 0
                invoices.refresh_if_due()  # before the claims read the new rows
                report.attempts_created += self.create_due_attempts(now, report, paused, attempts)
        invoices.refresh_if_due()
        if charging:
            report.attempts_created += self.create_due_attempts(now, report, paused, attempts)
            if not report.enqueue_failures:  # the broker is down: the next pass will do it
                report.requeued = self.requeue_lost(now, report, paused)
        report.reconciles = self.dispatch_reconciles(now, report)
        return report

    # -- invoices ---------------------------------------------------------------------------

    def cancel_due(self, now: datetime) -> int:
        """Cancel subscriptions whose grace period (suspended / waiting for a card) ran out."""
        with self.db.transaction() as session:
            query = (
                select(Subscription)
                .where(
                    Subscription.status.in_(
                        [SubscriptionStatus.SUSPENDED, SubscriptionStatus.NEEDS_PAYMENT_METHOD]
                    ),
                    Subscription.cancel_at <= now,
                )
                .limit(self.batch_size)
            )
            due = session.scalars(self.db.skip_locked(query)).all()
            for sub in due:
                cancel_subscription(
                    session,
                    sub,
                    now,
                    f"canceled: still {sub.status} at the end of its grace period",
                )
            # Cancellations requested for the end of a period (billing.services.actions.pausing
            # sets ``ends_at`` and clears ``next_charge_at``, so no further period opens).
            ending = session.scalars(
                self.db.skip_locked(
                    select(Subscription)
                    .where(
                        Subscription.ends_at <= now,
                        Subscription.status != SubscriptionStatus.CANCELED,
                    )
                    .limit(self.batch_size)
                )
            ).all()
            for sub in ending:
                cancel_subscription(
                    session, sub, now, "canceled at the end of its billing period, as requested"
                )
            return len(due) + len(ending)

    # -- attempts ---------------------------------------------------------------------------

    def probe_paused(self, now: datetime, report: PassReport) -> frozenset[str]:
        """Probe each paused merchant account whose probe is due; the accounts still paused."""
        with self.db.transaction() as session:
            circuits = load_circuits(session)
        for account, circuit in circuits.items():
            if circuit.probe_due(now) and self.gateway is not None:
                report.probe = self.probe(now, account)
        with self.db.transaction() as session:
            return frozenset(paused_accounts(session, now))

    def create_due_attempts(
        self,
        now: datetime,
        report: PassReport,
        paused: frozenset[str] = frozenset(),
        statistics: StatisticsRefresh | None = None,
    ) -> int:
        """Create one attempt (with its orderNumber) for each invoice whose charge is due,
        except for subscriptions of a merchant account whose charging is paused.

        Pages by (next_attempt_at, id) on ``ix_invoices_due``, as invoices are opened."""
        statistics = statistics or StatisticsRefresh(
            self.db, ChargeAttempt.__tablename__, self.refresh_statistics_after
        )
        created = 0
        after: Cursor | None = None
        while True:
            statistics.refresh_if_due()  # the table grows under the loop
            with self.db.transaction() as session:
                query = _due_invoices(now, after, paused).limit(self.batch_size)
                claimed = session.execute(self.db.skip_locked(query, Invoice)).all()
                if not claimed:
                    return created
                after = (claimed[-1][6], claimed[-1][0])
                busy = self._in_flight(session, [row[0] for row in claimed], now)
                invoice_updates, attempts = [], []
                for invoice_id, sub_id, count, amount, currency, binding_version, _ in claimed:
                    if invoice_id in busy:
                        continue
                    number = count + 1
                    invoice_updates.append(
                        {
                            "id": invoice_id,
                            "attempt_count": number,
                            "next_attempt_at": None,
                            "updated_at": now,
                        }
                    )
                    attempts.append(
                        _attempt_row(
                            invoice_id, sub_id, number, amount, currency, binding_version, now
                        )
                    )
                bulk_update(session, Invoice, invoice_updates)
                inserted = bulk_insert(session, ChargeAttempt, attempts, returning=("id",))
                ids = [row[0] for row in inserted]
            created += len(ids)
            statistics.wrote(len(ids))
            self._send(ids, now, report)

    def _in_flight(self, session: Session, invoice_ids: list[int], now: datetime) -> set[int]:
        """Invoices among ``invoice_ids`` that already have a charge in flight.

        By construction an invoice with an automatic attempt in flight has no
        ``next_attempt_at`` (the attempt's outcome decides the next step; a manual one keeps
        the plan and is left out by the query). Should that ever not hold, the invoice is
        left to its attempt, its due time cleared, and the fact logged — the one-in-flight
        unique index would refuse a second attempt anyway. An attempt waiting for an
        operator blocks its invoice the same way: nothing is charged until it is resolved.
        """
        busy = set(
            session.scalars(
                select(ChargeAttempt.invoice_id).where(
                    ChargeAttempt.invoice_id.in_(invoice_ids),
                    ChargeAttempt.state.in_(BLOCKING_STATES),
                )
            )
        )
        if busy:
            log.warning(
                "%d due invoice(s) have a charge in flight or waiting for an operator; left to it",
                len(busy),
            )
            session.execute(
                update(Invoice)
                .where(Invoice.id.in_(busy))
                .values(next_attempt_at=None, updated_at=now)
            )
        return busy

    # -- reconciliation ---------------------------------------------------------------------

    # -- circuit breaker probe --------------------------------------------------------------


def _due_invoices(
    now: datetime, after: Cursor | None, paused: frozenset[str]
) -> Select[int, int, int, int, str, int, datetime | None]:
    """Open invoices whose charge is due at ``now``, after ``after`` in (next_attempt_at, id)
    order, of chargeable subscriptions of accounts not ``paused``, with nothing in the way
    (an operator's charge in flight, a "not received" attempt still to be asked about)."""
    return (
        select(
            Invoice.id,
            Invoice.subscription_id,
            Invoice.attempt_count,
            Invoice.amount,
            Invoice.currency,
            Subscription.binding_version,
            Invoice.next_attempt_at,
        )
        .join(Subscription, Subscription.id == Invoice.subscription_id)
        .where(
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.next_attempt_at <= now,
            after_key(Invoice.next_attempt_at, Invoice.id, after),
            Subscription.status.in_([s.value for s in CHARGEABLE_STATUSES]),
            ~_manual_in_flight(),  # the plan waits for it, unchanged
            ~recheck_pending(Invoice.id),
            Subscription.merchant_account.not_in(paused) if paused else true(),
        )
        .order_by(Invoice.next_attempt_at, Invoice.id)
    )


def _attempt_row(
    invoice_id: int,
    sub_id: int,
    number: int,
    amount: int,
    currency: str,
    binding_version: int,
    now: datetime,
) -> dict[str, Any]:
    """A pending attempt's row, with its orderNumber fixed before any call."""
    trigger = AttemptTrigger.SCHEDULED if number == 1 else AttemptTrigger.RETRY
    return {
        "invoice_id": invoice_id,
        "subscription_id": sub_id,
        "attempt_number": number,
        "order_number": new_order_number(invoice_id, number),
        "trigger": trigger.value,
        "state": AttemptState.PENDING.value,
        "binding_version": binding_version,
        "amount": amount,
        "currency": currency,
        "status_checks": 0,
        "needs_refund": False,
        "created_at": now,
        "enqueued_at": now,
        "updated_at": now,
    }


def _manual_in_flight() -> ColumnElement[bool]:
    """The invoice has an operator's manual attempt in flight."""
    return (
        select(ChargeAttempt.id)
        .where(
            ChargeAttempt.invoice_id == Invoice.id,
            ChargeAttempt.state.in_(IN_FLIGHT_STATES),
            ChargeAttempt.trigger == AttemptTrigger.MANUAL.value,
        )
        .exists()
    )
