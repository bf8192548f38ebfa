"""The invariant check anyone can run (``billing audit``): is the money state consistent?

It decides, from facts read out of the database, which invariants fail:

* every open invoice has a next step: a planned attempt, an attempt in flight, an attempt
  waiting for an operator, a wait for a new card (needs_payment_method), a suspended,
  held or paused subscription (a deadline or an operator decides), an older open invoice
  of its subscription collected first (one collection at a time, oldest first; that one is
  checked too), or a final state;
* no invoice keeps two deposited (paid) attempts unless the extra one is flagged
  ``needs_refund`` (or was given back in full);
* every attempt recorded paid belongs to a paid invoice (or is flagged to refund), and
  every paid invoice has a paid attempt.

The checks (``check_*``) are pure; :func:`run_audit` only reads. It must never change
anything, nor call the gateway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.model import IN_FLIGHT_STATES, AttemptState, InvoiceStatus, SubscriptionStatus
from billing.gateway.classify_action import RefundState
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Refund, Subscription

#: Subscription statuses in which an open invoice waits for someone (a customer's new card,
#: an operator, a cancel deadline) rather than for a planned attempt.
WAITING_STATUSES = frozenset(
    {
        SubscriptionStatus.NEEDS_PAYMENT_METHOD,
        SubscriptionStatus.SUSPENDED,
        SubscriptionStatus.HELD,
        SubscriptionStatus.PAUSED,
    }
)


@dataclass(frozen=True)
class OpenInvoice:
    id: int
    subscription_id: int
    subscription_status: str
    next_attempt_at: datetime | None
    attempt_states: frozenset[str]
    #: An older open invoice of the same (not canceled) subscription is collected first.
    waits_for_older: bool = False


@dataclass(frozen=True)
class PaidAttempt:
    id: int
    invoice_id: int
    subscription_id: int
    invoice_status: str
    needs_refund: bool
    amount: int
    refunded: int


@dataclass(frozen=True)
class Problem:
    check: str
    subscription_id: int
    invoice_id: int
    message: str
    attempt_ids: tuple[int, ...] = ()


@dataclass
class AuditReport:
    open_invoices: int = 0
    paid_attempts: int = 0
    paid_invoices: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": {
                "open_invoices": self.open_invoices,
                "paid_attempts": self.paid_attempts,
                "paid_invoices": self.paid_invoices,
            },
            "problems": [asdict(p) | {"attempt_ids": list(p.attempt_ids)} for p in self.problems],
        }


def check_next_step(invoice: OpenInvoice) -> Problem | None:
    """An open invoice with nothing that will ever settle it is a problem."""
    if invoice.next_attempt_at is not None:
        return None
    waiting = IN_FLIGHT_STATES | {AttemptState.NEEDS_OPERATOR}
    if invoice.attempt_states & {s.value for s in waiting}:
        return None
    if invoice.subscription_status in {s.value for s in WAITING_STATUSES}:
        return None
    if invoice.waits_for_older and invoice.subscription_status != SubscriptionStatus.CANCELED:
        return None
    return Problem(
        "next_step",
        invoice.subscription_id,
        invoice.id,
        f"open invoice {invoice.id} (subscription {invoice.subscription_id}, "
        f"{invoice.subscription_status}) has no next step: no planned attempt, nothing in "
        "flight, nothing waiting for a card or an operator",
    )


def check_paid_attempts(attempts: list[PaidAttempt]) -> list[Problem]:
    """Per invoice: at most one kept payment unless flagged; each kept one on a paid invoice."""
    problems: list[Problem] = []
    by_invoice: dict[int, list[PaidAttempt]] = defaultdict(list)
    for attempt in attempts:
        if attempt.refunded < attempt.amount:  # money still kept
            by_invoice[attempt.invoice_id].append(attempt)
    for invoice_id, kept in sorted(by_invoice.items()):
        unflagged = [a for a in kept if not a.needs_refund]
        sub_id = kept[0].subscription_id
        if len(unflagged) > 1:
            ids = tuple(a.id for a in unflagged)
            problems.append(
                Problem(
                    "double_paid",
                    sub_id,
                    invoice_id,
                    f"invoice {invoice_id} has {len(ids)} paid attempts "
                    f"({', '.join(map(str, ids))}) and none of the extra ones is flagged "
                    "needs_refund",
                    ids,
                )
            )
        stray = [a for a in unflagged if a.invoice_status != InvoiceStatus.PAID]
        for attempt in stray:
            problems.append(
                Problem(
                    "paid_consistency",
                    sub_id,
                    invoice_id,
                    f"attempt {attempt.id} is recorded paid, but invoice {invoice_id} is "
                    f"{attempt.invoice_status} and the attempt is not flagged needs_refund",
                    (attempt.id,),
                )
            )
    return problems


def check_paid_invoice(invoice_id: int, subscription_id: int, paid_attempts: int) -> Problem | None:
    if paid_attempts:
        return None
    return Problem(
        "paid_consistency",
        subscription_id,
        invoice_id,
        f"invoice {invoice_id} is paid but no attempt of it is recorded paid",
    )


def _read_open(session: Session) -> tuple[Sequence[Any], dict[int, set[str]]]:
    """The open invoices (id, subscription, its status, next attempt, period start) and the
    states of their attempts, by invoice id."""
    open_rows = session.execute(
        select(
            Invoice.id,
            Invoice.subscription_id,
            Subscription.status,
            Invoice.next_attempt_at,
            Invoice.period_start,
        )
        .join(Subscription, Subscription.id == Invoice.subscription_id)
        .where(Invoice.status == InvoiceStatus.OPEN)
        .order_by(Invoice.id)
    ).all()
    states: dict[int, set[str]] = defaultdict(set)
    for invoice_id, state in session.execute(
        select(ChargeAttempt.invoice_id, ChargeAttempt.state)
        .join(Invoice, Invoice.id == ChargeAttempt.invoice_id)
        .where(Invoice.status == InvoiceStatus.OPEN)
        .distinct()
    ):
        states[invoice_id].add(state)
    return open_rows, states


def _read_paid(session: Session) -> tuple[Sequence[Any], Sequence[Any]]:
    """The paid attempts (with their invoice's status and what was refunded of them) and
    the paid invoices with how many of their attempts are recorded paid."""
    refunded = (
        select(func.coalesce(func.sum(Refund.amount), 0))
        .where(Refund.attempt_id == ChargeAttempt.id, Refund.state == RefundState.SUCCEEDED.value)
        .scalar_subquery()
    )
    paid_rows = session.execute(
        select(
            ChargeAttempt.id,
            ChargeAttempt.invoice_id,
            ChargeAttempt.subscription_id,
            Invoice.status,
            ChargeAttempt.needs_refund,
            ChargeAttempt.amount,
            refunded,
        )
        .join(Invoice, Invoice.id == ChargeAttempt.invoice_id)
        .where(ChargeAttempt.state == AttemptState.PAID)
        .order_by(ChargeAttempt.id)
    ).all()
    paid_count = (
        select(func.count(ChargeAttempt.id))
        .where(ChargeAttempt.invoice_id == Invoice.id, ChargeAttempt.state == AttemptState.PAID)
        .scalar_subquery()
    )
    paid_invoices = session.execute(
        select(Invoice.id, Invoice.subscription_id, paid_count)
        .where(Invoice.status == InvoiceStatus.PAID)
        .order_by(Invoice.id)
    ).all()
    return paid_rows, paid_invoices


def _check_open(open_rows: Sequence[Any], states: dict[int, set[str]]) -> list[Problem]:
    """Every open invoice has a next step (an older open invoice of its subscription goes
    first)."""
    problems: list[Problem] = []
    oldest: dict[int, tuple[datetime, int]] = {}
    for invoice_id, sub_id, _status, _next_at, period in open_rows:
        oldest[sub_id] = min(oldest.get(sub_id, (period, invoice_id)), (period, invoice_id))
    for invoice_id, sub_id, sub_status, next_at, period in open_rows:
        found = check_next_step(
            OpenInvoice(
                invoice_id,
                sub_id,
                sub_status,
                next_at,
                frozenset(states[invoice_id]),
                waits_for_older=oldest[sub_id] < (period, invoice_id),
            )
        )
        if found is not None:
            problems.append(found)
    return problems


def run_audit(db: Database) -> AuditReport:
    """Read the facts and run every check. Reads only."""
    report = AuditReport()
    with db.transaction() as session:
        open_rows, states = _read_open(session)
        paid_rows, paid_invoices = _read_paid(session)
    report.problems += _check_open(open_rows, states)
    attempts = [
        PaidAttempt(a, i, s, status, bool(flag), int(amount), int(back or 0))
        for a, i, s, status, flag, amount, back in paid_rows
    ]
    report.problems += check_paid_attempts(attempts)
    for invoice_id, sub_id, count in paid_invoices:
        if (problem := check_paid_invoice(invoice_id, sub_id, int(count or 0))) is not None:
            report.problems.append(problem)
    report.open_invoices = len(open_rows)
    report.paid_attempts = len(paid_rows)
    report.paid_invoices = len(paid_invoices)
    return report
