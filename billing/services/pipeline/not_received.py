"""The one re-check of an attempt ruled "not received" (the gateway had no such order once
its send's lease ran out).

It decides when that attempt is asked about once more (``next_check_at``: after the
longest call has certainly ended) and when an answer ends the re-check (only one given once
any call of that send has certainly ended). While ``next_check_at`` is set, its invoice
gets no new attempt (:func:`billing.services.lease.recheck_pending`). It must never call
the gateway, and never end a re-check on an answer that could precede a request still on
its way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from billing.domain.model import Outcome
from billing.services.audit import record_event
from billing.services.lease import NOT_RECEIVED, RECHECKED_STATES, LeaseClock, LeaseTerms
from billing.storage.tables import ChargeAttempt


def plan_recheck(
    session: Session,
    attempt: ChargeAttempt,
    outcome: Outcome,
    lease: LeaseTerms | None,
    lease_clock: LeaseClock,
) -> None:
    """Just settled: if ruled "not received", it is asked about once more later."""
    if lease is None or outcome.reason != NOT_RECEIVED:
        return
    if attempt.state in RECHECKED_STATES:
        attempt.next_check_at = lease.recheck_at(lease_clock(session))


def end_recheck(
    session: Session,
    attempt: ChargeAttempt,
    lease: LeaseTerms | None,
    lease_clock: LeaseClock,
    now: datetime,
) -> None:
    """The gateway answered the re-check (no such order, or a final state without money):
    the invoice may get its next attempt, if the answer came late enough to prove it."""
    if attempt.state not in RECHECKED_STATES or attempt.next_check_at is None:
        return
    sent_at = attempt.sent_at
    if lease is not None and (
        sent_at is None or not lease.recheck_counts(sent_at, lease_clock(session))
    ):
        return  # asked early (a callback): a request may still have been on its way
    attempt.next_check_at = None
    attempt.updated_at = now
    record_event(
        session,
        now,
        "not_received_confirmed",
        "re-checked after the longest call had ended: the gateway still has no charge for "
        "this order",
        subscription_id=attempt.subscription_id,
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
    )
