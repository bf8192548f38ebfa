"""The rows behind a refund: the paid attempt it gives back, what is already taken, and the
new ``refunds`` row with its event. On the caller's session and locks; it never calls the
gateway and never commits (the refund action does both, in that order)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.model import (
    AttemptState,
)
from billing.errors import (
    ConflictError,
    NotFoundError,
)
from billing.gateway.classify_action import (
    TAKEN_STATES,
    RefundState,
)
from billing.services.audit import record_event
from billing.storage.tables import (
    ChargeAttempt,
    Invoice,
    Refund,
)


def refundable_attempt(
    session: Session, attempt_id: int | None, invoice_id: int | None
) -> ChargeAttempt:
    if attempt_id is not None:
        attempt = session.get(
            ChargeAttempt, attempt_id, with_for_update=True, populate_existing=True
        )
        if attempt is None:
            raise NotFoundError(f"attempt {attempt_id} does not exist")
    else:
        if session.get(Invoice, invoice_id) is None:
            raise NotFoundError(f"invoice {invoice_id} does not exist")
        found = session.scalars(
            select(ChargeAttempt)
            .where(
                ChargeAttempt.invoice_id == invoice_id,
                ChargeAttempt.state == AttemptState.PAID,
            )
            .order_by(ChargeAttempt.needs_refund, ChargeAttempt.id)
            .limit(1)
            .with_for_update()
        ).first()
        if found is None:
            raise ConflictError(f"invoice {invoice_id} has no paid attempt to refund")
        attempt = found
    if attempt.state != AttemptState.PAID:
        raise ConflictError(
            f"attempt {attempt.id} is {attempt.state}: only a paid attempt can be refunded"
        )
    if not attempt.gateway_order_id:
        raise ConflictError(
            f"attempt {attempt.id}: the gateway's order id is not known; "
            "run `billing reconcile` first"
        )
    return attempt


def check_not_reversed(session: Session, attempt: ChargeAttempt) -> None:
    reversal = session.scalars(
        select(Refund).where(
            Refund.attempt_id == attempt.id,
            Refund.kind == "reverse",
            Refund.state.in_(TAKEN_STATES),
        )
    ).first()
    if reversal is None:
        return
    if reversal.state == RefundState.SUCCEEDED:
        raise ConflictError(f"attempt {attempt.id} was already reversed (refund {reversal.id})")
    raise ConflictError(
        f"attempt {attempt.id} has a reversal whose outcome is {reversal.state} "
        f"(refund {reversal.id}); settle it first: billing refunds settle {reversal.id}"
    )


def taken_amount(session: Session, attempt_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.attempt_id == attempt_id, Refund.state.in_(TAKEN_STATES)
            )
        )
        or 0
    )


def refundable_left(session: Session, attempt_id: int) -> int:
    """What of the attempt's paid amount is left to refund (unsettled refunds count as
    taken)."""
    return session.get_one(ChargeAttempt, attempt_id).amount - taken_amount(session, attempt_id)


def new_refund(
    session: Session,
    attempt: ChargeAttempt,
    kind: str,
    amount: int,
    external: str,
    actor: str,
    reason: str,
    now: datetime,
) -> Refund:
    refund = Refund(
        attempt_id=attempt.id,
        invoice_id=attempt.invoice_id,
        subscription_id=attempt.subscription_id,
        kind=kind,
        amount=amount,
        currency=attempt.currency,
        external_refund_id=external,
        state=RefundState.REQUESTED.value,
        actor=actor,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    record_event(
        session,
        now,
        f"{kind}_requested",
        f"{reason} ({kind} {refund.id}: {amount} {attempt.currency} of order "
        f"{attempt.order_number})",
        subscription_id=attempt.subscription_id,
        invoice_id=attempt.invoice_id,
        attempt_id=attempt.id,
        to_state=RefundState.REQUESTED.value,
        actor=actor,
    )
    return refund
