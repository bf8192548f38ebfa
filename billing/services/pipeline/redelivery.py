"""The scheduler pass's second half: sending again what was lost and asking about what is
unclear. It enqueues attempts no worker took, status checks for unknown outcomes, stalled
sends and attempts waiting for an operator, and probes the gateway while charging is paused.

It decides when a message counts as lost and when an attempt is due a status check; it never
settles an attempt itself (the worker does, by order status) and never sends a charge twice:
a message carries only an id, and the worker refuses an attempt that is not pending.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, true, update
from sqlalchemy.sql.elements import ColumnElement

from billing.domain import circuit_breaker as breaker
from billing.domain.dunning_policy import DunningPolicy
from billing.domain.model import (
    AttemptState,
    Category,
)
from billing.errors import BillingError
from billing.gateway.accounts import gateway_for
from billing.gateway.classify import classify_status
from billing.gateway.port import Gateway
from billing.services.audit import record_event
from billing.services.lease import RECHECKED_STATES, LeaseClock
from billing.services.ports import Clock, Dispatcher
from billing.storage.circuit_row import DEFAULT_ACCOUNT, load_circuit, save_circuit
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Subscription

if TYPE_CHECKING:
    from billing.services.pipeline.scheduler_pass import PassReport

log = logging.getLogger("billing.scheduler")


class Redelivery:
    """Mixed into :class:`~billing.services.pipeline.scheduler_pass.Scheduler`."""

    db: Database
    dispatcher: Dispatcher
    policy: DunningPolicy
    gateway: Gateway | None
    clock: Clock
    batch_size: int
    requeue_after: timedelta
    stale_sending_after: timedelta
    lease_clock: LeaseClock

    def requeue_lost(
        self, now: datetime, report: PassReport, paused: frozenset[str] = frozenset()
    ) -> int:
        """Enqueue again the attempts that were created but never picked up.

        Never enqueued (the broker refused) → at once. Enqueued long ago and still pending →
        the message was lost (Redis restarted without persistence) — but only when the queue
        has drained: while a month-start backlog is still waiting, an old message is late,
        not lost, and sending it again would only double the backlog. Attempts of a merchant
        account whose charging is paused wait for it to resume.
        """
        lost: list[ColumnElement[bool]] = [ChargeAttempt.enqueued_at.is_(None)]
        if not self.dispatcher.backlog():
            lost.append(ChargeAttempt.enqueued_at < now - self.requeue_after)
        ids: list[int] = []
        with self.db.transaction() as session:
            for condition in lost:  # one index range each (ix_charge_attempts_pending_enqueued)
                query = (
                    select(ChargeAttempt.id)
                    .where(ChargeAttempt.state == AttemptState.PENDING, condition)
                    .where(~_of_accounts(paused) if paused else true())
                    .order_by(ChargeAttempt.enqueued_at)
                    .limit(self.batch_size - len(ids))
                )
                ids += session.scalars(self.db.skip_locked(query))
                if len(ids) >= self.batch_size:
                    break
            if ids:
                session.execute(
                    update(ChargeAttempt).where(ChargeAttempt.id.in_(ids)).values(enqueued_at=now)
                )
        if ids:
            log.warning("re-enqueueing %d attempt(s) that no worker picked up", len(ids))
            self._send(ids, now, report)
        return len(ids)

    def _send(self, ids: list[int], now: datetime, report: PassReport) -> None:
        """Enqueue after commit. The rows already say ``enqueued_at = now``; if the broker
        refuses, they are marked not enqueued so the next pass sends them at once (and if
        this process dies first, ``requeue_after`` brings them back)."""
        if not ids:
            return
        try:
            self.dispatcher.charge(ids)
        except BillingError as exc:
            report.enqueue_failures += len(ids)
            log.warning("could not enqueue %d charge(s) (%s); a later pass will", len(ids), exc)
            with self.db.transaction() as session:
                session.execute(
                    update(ChargeAttempt)
                    .where(ChargeAttempt.id.in_(ids), ChargeAttempt.state == AttemptState.PENDING)
                    .values(enqueued_at=None)
                )

    def dispatch_reconciles(self, now: datetime, report: PassReport) -> int:
        """Enqueue status checks for unknown outcomes, for sends that never finished, and the
        one re-check of attempts ruled "not received" (both judged on the lease clock).

        At most one check per attempt waits in the queue: an attempt whose check message no
        worker has taken yet is not enqueued again, unless that message counts as lost (as
        for charges: older than ``requeue_after`` while the queue has drained). Without this,
        a month-start backlog longer than the check cadence grew by every unknown attempt on
        every pass and starved the charges behind it.
        """
        lease = now + self.stale_sending_after
        with self.db.transaction() as session:
            lease_now = self.lease_clock(session)
            query = (
                select(ChargeAttempt)
                .where(self._no_check_waiting(now))
                .where(
                    or_(
                        and_(
                            ChargeAttempt.state == AttemptState.UNKNOWN,
                            ChargeAttempt.next_check_at <= now,
                        ),
                        and_(
                            ChargeAttempt.state == AttemptState.SENDING,
                            ChargeAttempt.sent_at < lease_now - self.stale_sending_after,
                            or_(
                                ChargeAttempt.next_check_at.is_(None),
                                ChargeAttempt.next_check_at <= now,
                            ),
                        ),
                        self._operator_recheck_due(now),
                        and_(
                            ChargeAttempt.state.in_(RECHECKED_STATES),
                            ChargeAttempt.next_check_at <= lease_now,
                        ),
                    )
                )
                .limit(self.batch_size)
            )
            attempts = session.scalars(self.db.skip_locked(query)).all()
            ids = [a.id for a in attempts]
            slow = now + self.policy.unknown.operator_recheck_every
            for attempt in attempts:
                attempt.check_enqueued_at = now
                if attempt.state == AttemptState.NEEDS_OPERATOR:
                    attempt.next_check_at = slow
                elif attempt.state in RECHECKED_STATES:
                    attempt.next_check_at = lease_now + self.stale_sending_after
                else:
                    attempt.next_check_at = lease
        if ids:
            try:
                self.dispatcher.reconcile(ids)
            except BillingError as exc:
                report.enqueue_failures += len(ids)
                log.warning("could not enqueue %d reconciliation(s): %s", len(ids), exc)
                with self.db.transaction() as session:
                    session.execute(
                        update(ChargeAttempt)
                        .where(ChargeAttempt.id.in_(ids), ChargeAttempt.check_enqueued_at == now)
                        .values(check_enqueued_at=None)
                    )
        return len(ids)

    def _no_check_waiting(self, now: datetime) -> ColumnElement[bool]:
        """No status-check message of the attempt is waiting in the queue, or the one that
        was enqueued counts as lost (long ago, and the queue has drained since)."""
        waiting: list[ColumnElement[bool]] = [ChargeAttempt.check_enqueued_at.is_(None)]
        if not self.dispatcher.backlog():
            waiting.append(ChargeAttempt.check_enqueued_at < now - self.requeue_after)
        return or_(*waiting)

    def _operator_recheck_due(self, now: datetime) -> ColumnElement[bool]:
        """An attempt waiting for an operator is still asked about on a slow cadence, for
        ``unknown.operator_recheck_for`` after it was sent: a late DEPOSITED is recorded."""
        unknown = self.policy.unknown
        return and_(
            ChargeAttempt.state == AttemptState.NEEDS_OPERATOR,
            ChargeAttempt.sent_at >= now - unknown.operator_recheck_for,
            or_(ChargeAttempt.next_check_at.is_(None), ChargeAttempt.next_check_at <= now),
        )

    def probe(self, now: datetime, account: str = DEFAULT_ACCOUNT) -> str:
        """Ask merchant ``account``'s gateway for an order that cannot exist: "not found"
        proves we are let in."""
        assert self.gateway is not None
        gateway = gateway_for(self.gateway, account)
        outcome = classify_status(
            gateway.order_status(order_number=f"probe-{secrets.token_hex(8)}")
        )
        healthy = outcome.order_not_found or outcome.category not in (
            Category.MERCHANT_CONFIG,
            Category.TRANSIENT,
        )
        with self.db.transaction() as session:
            current = load_circuit(session, account, for_update=True)
            after = breaker.after_probe(
                current,
                healthy,
                f"probe failed: {outcome.reason}",
                now,
                pause_backoff=self.policy.merchant_config.pause_backoff,
            )
            save_circuit(session, after, now, account)
            if healthy:
                record_event(
                    session,
                    now,
                    "charging_resumed",
                    "probe succeeded"
                    if account == DEFAULT_ACCOUNT
                    else f"{account}: probe succeeded",
                    from_state="open",
                    to_state="closed",
                    actor="scheduler",
                )
                log.warning("charging resumed for account %s: the gateway probe succeeded", account)
            else:
                log.error(
                    "charging stays paused for account %s until %s: %s",
                    account,
                    after.retry_at,
                    after.reason,
                )
        return "healthy" if healthy else outcome.reason


def _of_accounts(accounts: frozenset[str]) -> ColumnElement[bool]:
    """The attempt's subscription belongs to one of ``accounts``."""
    return (
        select(Subscription.id)
        .where(
            Subscription.id == ChargeAttempt.subscription_id,
            Subscription.merchant_account.in_(accounts),
        )
        .exists()
    )
