"""Settling a batch of sent attempts: the paid ones of the month-start burst in one
transaction, everything else one by one through the single settlement.

An attempt is written here only when nothing but "paid" can follow: the order says
DEPOSITED (classified PAID), the attempt is still ``sending``, its invoice is open, the
subscription is not in dunning (nothing to recover) and has no other open invoice (nothing
to release), it is not an operator's manual attempt, and the pure dunning decision
(:func:`billing.domain.dunning.decide`) says MARK_PAID. The attempt's columns come from
the same mapping as the single path (:func:`attempt_rows.outcome_columns`), the same two
events are recorded. Every other outcome (declines, failures, unknowns, late or double
payments) goes to :meth:`Settlement.finish`, so no money rule exists twice.

It must never call the gateway, and never write an outcome for an attempt that is not
``sending`` (a redelivered batch, a reconciliation or a callback may have settled it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from billing.domain.dunning import Action, decide
from billing.domain.model import AttemptState, AttemptTrigger, Category, InvoiceStatus, Outcome
from billing.observability.logs import log_context
from billing.observability.metrics import count_charge_outcome
from billing.services.audit import record_events
from billing.services.pipeline.attempt_rows import outcome_columns
from billing.services.pipeline.paid_invoice import RECOVERING
from billing.services.pipeline.settlement import Settlement
from billing.storage.bulk import bulk_update, ids_in
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.charging")


class Finish(Protocol):
    """Settle one attempt's outcome (``Charger.finish`` or ``Settlement.finish``)."""

    def __call__(
        self,
        attempt_id: int,
        outcome: Outcome,
        expected: set[AttemptState],
        *,
        status_check: bool,
        count_for_breaker: bool = True,
    ) -> str: ...


_RECOVERING = frozenset(status.value for status in RECOVERING)
#: Tries of the batch transaction (a deadlock with a concurrent settlement is retried);
#: after that, each attempt is settled on its own.
_TRIES = 3


@dataclass(frozen=True)
class Charged:
    """One attempt sent by this worker and what its call (and status check) said."""

    attempt_id: int
    invoice_id: int
    subscription_id: int
    trigger: AttemptTrigger
    order_number: str
    outcome: Outcome
    #: The subscription's merchant account (its breaker counts the outcome).
    account: str = "default"


class BatchSettlement:
    """Settles a batch's outcomes: paid ones together, others one by one through ``finish``
    (the charger's: a held order is captured, a stuck one declined, before settling)."""

    def __init__(self, single: Settlement, finish: Finish | None = None) -> None:
        self.single = single
        self.finish: Finish = finish or single.finish

    def settle(self, charged: Sequence[Charged]) -> list[str]:
        """Settle every outcome; returns one word per attempt (as the single path does)."""
        if not charged:
            return []
        now = self.single.clock()
        quick = [
            c
            for c in charged
            if c.outcome.category is Category.PAID and c.trigger is not AttemptTrigger.MANUAL
        ]
        paid = self._mark_paid(quick, now) if quick else []
        for c in paid:
            count_charge_outcome(c.outcome.category.value, c.outcome.reason)
            with _logging_ids(c):
                log.info(
                    "attempt %s: %s (%s, errorCode %s, actionCode %s) -> %s",
                    c.attempt_id,
                    c.outcome.category.value,
                    c.outcome.reason,
                    c.outcome.error_code,
                    c.outcome.action_code,
                    Action.MARK_PAID.value,
                )
        results = [Category.PAID.value] * len(paid)
        done = {c.attempt_id for c in paid}
        for c in charged:
            if c.attempt_id not in done:
                with _logging_ids(c):
                    word = self.finish(
                        c.attempt_id,
                        c.outcome,
                        {AttemptState.SENDING},
                        status_check=False,
                        count_for_breaker=False,
                    )
                results.append(word)
        # One batch is one look at the gateway's health: at most one pause starts from it.
        by_account: dict[str, list[Outcome]] = {}
        for c in charged:
            by_account.setdefault(c.account, []).append(c.outcome)
        for account, outcomes in by_account.items():
            self.single.circuit.observe(outcomes, now, account)
        return results

    def _mark_paid(self, quick: list[Charged], now: datetime) -> list[Charged]:
        for attempt in range(1, _TRIES + 1):
            try:
                with self.single.db.transaction() as session:
                    return self._write_paid(session, quick, now)
            except OperationalError as exc:  # deadlock, serialization, a dropped connection
                why = type(exc).__name__
                log.warning("batch settlement failed (%s, try %d of %d)", why, attempt, _TRIES)
        return []  # each attempt is settled on its own

    def _write_paid(self, session: Session, quick: list[Charged], now: datetime) -> list[Charged]:
        rows = _locked(session, [c.attempt_id for c in quick])
        waiting = _other_open_invoices(session, rows)
        per_subscription = Counter(row.subscription_id for row in rows)
        by_id = {c.attempt_id: c for c in quick}
        attempts, invoices, events, written = [], [], [], []
        for row in rows:
            c = by_id[row.id]
            decision = decide(
                self.single.policy,
                [],
                c.outcome,
                now,
                binding_version=row.binding_version,
                trigger=c.trigger,
            )
            simple = (
                row.state == AttemptState.SENDING
                and row.invoice_status == InvoiceStatus.OPEN
                and row.subscription_status not in _RECOVERING
                and row.subscription_id not in waiting
                and per_subscription[row.subscription_id] == 1
                and decision.action is Action.MARK_PAID
            )
            if not simple:
                continue  # the single settlement decides (and records) it
            columns = outcome_columns(row.gateway_order_id, c.outcome, decision, now)
            attempts.append({"id": row.id} | columns)
            invoices.append(
                {
                    "id": row.invoice_id,
                    "status": InvoiceStatus.PAID.value,
                    "paid_at": now,
                    "closed_at": now,
                    "updated_at": now,
                    "next_attempt_at": None,
                }
            )
            ids = {"subscription_id": row.subscription_id, "invoice_id": row.invoice_id}
            events.append(
                ids
                | {"at": now, "kind": f"attempt_{columns['state']}", "reason": decision.reason}
                | {"attempt_id": row.id, "to_state": columns["state"]}
            )
            events.append(
                ids
                | {"at": now, "kind": "invoice_paid", "reason": f"paid by order {c.order_number}"}
                | {"attempt_id": row.id, "from_state": row.invoice_status, "to_state": "paid"}
            )
            written.append(c)
        bulk_update(session, ChargeAttempt, attempts)
        bulk_update(session, Invoice, invoices)
        record_events(session, events)
        return written


def _logging_ids(c: Charged) -> AbstractContextManager[None]:
    return log_context(
        attempt_id=c.attempt_id,
        invoice_id=c.invoice_id,
        subscription_id=c.subscription_id,
        order_number=c.order_number,
    )


def _locked(session: Session, ids: list[int]) -> Sequence[Row[Any]]:
    """The attempts, their invoices and subscriptions, locked in attempt id order (the
    single settlement's order: attempt, invoice, subscription)."""
    query = (
        select(
            ChargeAttempt.id,
            ChargeAttempt.state,
            ChargeAttempt.invoice_id,
            ChargeAttempt.subscription_id,
            ChargeAttempt.gateway_order_id,
            Invoice.status.label("invoice_status"),
            Subscription.status.label("subscription_status"),
            Subscription.binding_version,
        )
        .join(Invoice, Invoice.id == ChargeAttempt.invoice_id)
        .join(Subscription, Subscription.id == ChargeAttempt.subscription_id)
        .where(ids_in(session, ChargeAttempt.id, ids))
        .order_by(ChargeAttempt.id)
        .with_for_update(of=(ChargeAttempt, Invoice, Subscription))
    )
    rows: Sequence[Row[Any]] = session.execute(query).all()  # type: ignore[assignment]
    return rows


def _other_open_invoices(session: Session, rows: Sequence[Row[Any]]) -> set[int]:
    """Subscriptions among ``rows`` with an open invoice besides the ones being settled:
    paying may release it (the oldest open invoice is collected next)."""
    if not rows:
        return set()
    query = select(Invoice.subscription_id).where(
        ids_in(session, Invoice.subscription_id, {row.subscription_id for row in rows}),
        Invoice.status == InvoiceStatus.OPEN,
        ids_in(session, Invoice.id, [row.invoice_id for row in rows], negate=True),
    )
    return set(session.scalars(query))
