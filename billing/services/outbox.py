"""The transactional outbox: public events written in the same transaction as their change.

:func:`stage` (called by billing.services.audit.record_event for every internal change, and
by the scheduler pass for the invoices it opens set-wise) remembers, on the session, the
public event a change is (billing.domain.public_events). Just before that session commits,
:func:`_write_staged` renders each staged event with its object as the API shows it (so the
payload shows the state the transaction commits) and inserts the ``outbox_events`` rows on
the same connection. A rolled-back transaction takes its staged events with it: no event
without its change, no change without its event.

On PostgreSQL the rows are inserted under a transaction-level advisory lock taken at the
very end of the transaction (after the payloads are rendered and the sequence numbers
taken), so ids become visible in id order and a poller that pages by id never skips an
event committed late. Must never commit, call the network, or put a
full bindingId or a secret in a payload.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from billing.domain.public_events import Subject, public_type, subject_of
from billing.services.read.views import invoice_summary, iso, refund_view, subscription_summary
from billing.storage.bulk import bulk_insert, ids_in
from billing.storage.database import LIVEMODE
from billing.storage.outbox_tables import EventSequence, OutboxEvent
from billing.storage.tables import ChargeAttempt, Event, Invoice, Refund, Subscription

_STAGED = "billing.outbox.staged"
_ADVISORY_KEY = 0x62696C6C6F7574  # "billout": serialises outbox inserts on PostgreSQL


@dataclass(frozen=True)
class Staged:
    type: str
    at: datetime
    reason: str
    subscription_id: int | None = None
    invoice_id: int | None = None
    attempt_id: int | None = None
    from_state: str | None = None
    to_state: str | None = None
    actor: str = "system"
    #: ``invoice.upcoming``: when the charge is due.
    due_at: datetime | None = None


def stage(session: Session, event: Event) -> None:
    """Remember the public event of one internal change (its ``events`` row), if it is one,
    for this commit."""
    stage_values(session, {column: getattr(event, column) for column in (*EVENT_COLUMNS, "actor")})


#: The columns of an ``events`` row besides ``actor``: what a public event is built from
#: (see :func:`stage_values`) and what ``audit.record_events`` inserts.
EVENT_COLUMNS = (
    "at",
    "kind",
    "reason",
    "subscription_id",
    "invoice_id",
    "attempt_id",
    "from_state",
    "to_state",
)


def stage_values(session: Session, row: Mapping[str, Any]) -> None:
    """:func:`stage` for an ``events`` row written set-wise (a dict of its columns)."""
    event_type = public_type(row["kind"], row.get("from_state"), row.get("to_state"))
    if event_type is None:
        return
    stage_public(
        session,
        Staged(
            event_type,
            row["at"],
            row["reason"],
            row.get("subscription_id"),
            row.get("invoice_id"),
            row.get("attempt_id"),
            row.get("from_state"),
            row.get("to_state"),
            row.get("actor", "system"),
        ),
    )


def stage_public(session: Session, staged: Staged) -> None:
    session.info.setdefault(_STAGED, []).append(staged)


def stage_invoices_created(
    session: Session, inserted: Sequence[tuple[Any, ...]], now: datetime
) -> None:
    """``invoice.created`` for invoices opened set-wise: rows of (id, subscription_id, …)."""
    for invoice_id, sub_id, *_ in inserted:
        stage_public(
            session,
            Staged(
                "invoice.created",
                now,
                "billing period is due",
                subscription_id=sub_id,
                invoice_id=invoice_id,
                to_state="open",
                actor="scheduler",
            ),
        )


@event.listens_for(Session, "before_commit")
def _write_staged(session: Session) -> None:
    staged: list[Staged] | None = session.info.pop(_STAGED, None)
    if staged:
        write_events(session, staged)


@event.listens_for(Session, "after_rollback")
def _drop_staged(session: Session) -> None:
    session.info.pop(_STAGED, None)


def write_events(session: Session, staged: Sequence[Staged]) -> None:
    """Insert the ``outbox_events`` rows of ``staged`` (in order) on this session.

    Everything but the insert happens before the advisory lock: the sequence numbers (row
    locks on ``event_sequences``, taken in subscription order, so transactions touching one
    subscription commit its events in sequence order) and the payloads. Under the lock,
    held to the commit, only the insert: a month-start batch of 500 invoices rendering its
    payloads there kept every worker's commit waiting."""
    postgres = session.get_bind().dialect.name == "postgresql"
    session.flush()  # the transaction's own row changes, before any lock of ours
    loaded = _prefetch(session, staged)  # held until rendered: the identity map is weak
    counts = Counter(s.subscription_id for s in staged if s.subscription_id is not None)
    last = _allocate_sequences(session, counts, postgres=postgres)
    first = {sub: last[sub] - count + 1 for sub, count in counts.items()}
    livemode = bool(session.info.get(LIVEMODE, True))
    rows = []
    for item in staged:
        sequence = None
        if item.subscription_id is not None:
            sequence = first[item.subscription_id]
            first[item.subscription_id] += 1
        public_id = "evt_" + secrets.token_hex(12)
        payload = {
            "id": public_id,
            "type": item.type,
            "created_at": iso(item.at),
            "livemode": livemode,
            "subscription_id": item.subscription_id,
            "sequence": sequence,
            "data": render(session, item),
        }
        rows.append(
            {
                "public_id": public_id,
                "type": item.type,
                "subscription_id": item.subscription_id,
                "sequence": sequence,
                "created_at": item.at,
                "livemode": livemode,
                "payload": json.dumps(payload, separators=(",", ":")),
                "dispatched_at": None,
            }
        )
    del loaded  # every payload is rendered
    if postgres:  # ids become visible in id order: the insert and the commit are serialised
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
    bulk_insert(session, OutboxEvent, rows)


def _allocate_sequences(
    session: Session, per_subscription: Counter[int], *, postgres: bool
) -> dict[int, int]:
    """Reserve ``count`` numbers for each subscription; returns each one's last reserved
    number (taken in subscription order, so two transactions cannot deadlock here)."""
    counts = sorted(per_subscription.items())
    if not counts:
        return {}
    if postgres:
        result = session.execute(
            text(
                "INSERT INTO event_sequences (subscription_id, last) "
                "SELECT * FROM unnest(CAST(:subs AS BIGINT[]), CAST(:counts AS INTEGER[])) "
                "ON CONFLICT (subscription_id) DO UPDATE "
                "SET last = event_sequences.last + excluded.last "
                "RETURNING subscription_id, last"
            ),
            {"subs": [s for s, _ in counts], "counts": [n for _, n in counts]},
        )
        return {int(sub): int(n) for sub, n in result}
    last = {}
    for sub, count in counts:
        statement = (
            sqlite.insert(EventSequence)
            .values(subscription_id=sub, last=count)
            .on_conflict_do_update(
                index_elements=["subscription_id"],
                set_={"last": EventSequence.last + count},
            )
            .returning(EventSequence.last)
        )
        last[sub] = int(session.execute(statement).scalar_one())
    return last


def _prefetch(session: Session, staged: Sequence[Staged]) -> list[object]:
    """Load, in a few queries, every row the payloads show (only what :func:`render` reads
    for each event's subject: a paid invoice's event loads no subscription). The identity
    map only keeps what is referenced, so the caller holds the returned rows while it
    renders."""
    loaded: list[object] = []
    subs: set[int] = set()
    invoices: set[int] = set()
    attempts: set[int] = set()
    for s in staged:
        subject = subject_of(s.type)
        if s.type == "invoice.upcoming" or subject is Subject.SUBSCRIPTION:
            _add(subs, s.subscription_id)
        elif subject is Subject.INVOICE:
            _add(invoices, s.invoice_id)
            if s.type == "invoice.payment_failed":
                _add(attempts, s.attempt_id)
        elif subject is Subject.CHARGE:
            _add(attempts, s.attempt_id)
    if subs:
        loaded += session.scalars(
            select(Subscription).where(ids_in(session, Subscription.id, subs))
        ).all()
    if invoices:
        loaded += session.scalars(
            select(Invoice).where(ids_in(session, Invoice.id, invoices))
        ).all()
    if attempts:
        query = select(ChargeAttempt).where(ids_in(session, ChargeAttempt.id, attempts))
        loaded += session.scalars(query).all()
    return loaded


def _add(ids: set[int], value: int | None) -> None:
    if value is not None:
        ids.add(value)


def render(session: Session, item: Staged) -> dict[str, Any]:
    """The ``data`` of one event: its object as the API shows it, and why it changed."""
    subject = subject_of(item.type)
    data: dict[str, Any]
    if item.type == "invoice.upcoming" and item.subscription_id is not None:
        data = _upcoming(session.get_one(Subscription, item.subscription_id), item)
    elif subject is Subject.SUBSCRIPTION and item.subscription_id is not None:
        sub = session.get_one(Subscription, item.subscription_id)
        data = {"object": "subscription"} | subscription_summary(sub)
        data["previous_status"] = item.from_state
    elif subject is Subject.INVOICE and item.invoice_id is not None:
        invoice = session.get_one(Invoice, item.invoice_id)
        data = {"object": "invoice"} | invoice_summary(invoice)
        if item.type == "invoice.payment_failed" and item.attempt_id is not None:
            data["failure"] = _failure(session.get_one(ChargeAttempt, item.attempt_id), invoice)
    elif subject is Subject.CHARGE and item.attempt_id is not None:
        data = {"object": "charge"} | _charge(session.get_one(ChargeAttempt, item.attempt_id))
    elif subject is Subject.REFUND and item.attempt_id is not None:
        refund = session.scalars(
            select(Refund)
            .where(Refund.attempt_id == item.attempt_id)
            .order_by(Refund.updated_at.desc(), Refund.id.desc())
            .limit(1)
        ).one()
        data = {"object": "refund"} | refund_view(refund)
    else:
        data = {"object": "charging", "state": item.to_state, "previous_state": item.from_state}
    data["reason"] = item.reason
    data["actor"] = item.actor
    return data


def _upcoming(sub: Subscription, item: Staged) -> dict[str, Any]:
    return {
        "object": "invoice",
        "status": "upcoming",
        "subscription_id": sub.id,
        "period_start": iso(item.due_at),
        "amount": sub.amount,
        "currency": sub.currency,
        "binding": subscription_summary(sub)["binding"],
        "subscription": subscription_summary(sub),
    }


def _failure(attempt: ChargeAttempt, invoice: Invoice) -> dict[str, Any]:
    return {
        "attempt_id": attempt.id,
        "attempt_number": attempt.attempt_number,
        "category": attempt.category,
        "reason": attempt.reason,
        "error_code": attempt.error_code,
        "action_code": attempt.action_code,
        "message": attempt.message,
        "next_retry_at": iso(invoice.next_attempt_at),
    }


def _charge(attempt: ChargeAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "invoice_id": attempt.invoice_id,
        "subscription_id": attempt.subscription_id,
        "attempt_number": attempt.attempt_number,
        "order_number": attempt.order_number,
        "gateway_order_id": attempt.gateway_order_id,
        "amount": attempt.amount,
        "currency": attempt.currency,
        "state": attempt.state,
        "category": attempt.category,
        "reason": attempt.reason,
        "error_code": attempt.error_code,
        "action_code": attempt.action_code,
        "needs_refund": attempt.needs_refund,
    }
