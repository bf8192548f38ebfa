"""Refunds and reversals whose answer was lost (``unknown``): settled by the order's status,
or a refund sent again under the same ``externalRefundId``.

It decides which rows may be settled or sent again and records what the gateway says
(through :meth:`RefundActions._settle_refund`); what a status answer means is
:mod:`billing.gateway.classify_refunds`'s decision. It must never send a refund that may
have happened under a *new* externalRefundId (the gateway performs one id at most once),
never send a reversal again, and never call an unknown outcome a success.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.errors import ConflictError, GatewayError, NotFoundError
from billing.gateway.classify_action import (
    ActionOutcome,
    RefundState,
    classify_action,
)
from billing.gateway.classify_refunds import RefundQuestion, refund_by_status
from billing.gateway.port import Gateway, RefundRequest
from billing.services.accounts import gateway_of
from billing.services.actions.refund_rows import refundable_left
from billing.services.audit import record_event
from billing.services.idempotency import Stored
from billing.services.read.views import refund_view
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, IdempotencyKey, Refund

#: ``(refund id, outcome, actor, idempotency key, from state)`` → the refund as it now stands.
SettleFn = Callable[[int, ActionOutcome, str, str | None, str], dict[str, Any]]
UNKNOWN = RefundState.UNKNOWN.value
UNSETTLED = (RefundState.REQUESTED.value, RefundState.UNKNOWN.value)


def settle_unknown(
    db: Database, gateway: Gateway, settle: SettleFn, *, refund_id: int | None, actor: str
) -> list[dict[str, Any]]:
    """Ask the order's status about each unknown refund (or the one given) and record
    succeeded / failed; one the status cannot tell about stays unknown (and says why)."""
    with db.transaction() as session:
        query = select(Refund).where(Refund.state == UNKNOWN).order_by(Refund.id)
        if refund_id is not None:
            _unknown_refund(session, refund_id)
            query = query.where(Refund.id == refund_id)
        asks = [
            (_question(session, refund), gateway_of(session, gateway, refund.subscription_id))
            for refund in session.scalars(query)
        ]
    results = []
    for (rid, order_number, question), account_gateway in asks:
        try:
            answer = account_gateway.order_status(order_number=order_number)
        except GatewayError as exc:  # a request the gateway's rules refuse: nothing sent
            outcome = ActionOutcome(RefundState.UNKNOWN, f"status not asked: {exc}")
        else:
            outcome = refund_by_status(answer, question)
        if outcome.state is RefundState.UNKNOWN:
            with db.transaction() as session:
                refund = session.get_one(Refund, rid)
                results.append(refund_view(refund) | {"note": f"still unknown: {outcome.message}"})
            continue
        results.append(settle(rid, outcome, actor, None, UNKNOWN))
    return results


def resend_refund(
    db: Database,
    gateway: Gateway,
    settle: SettleFn,
    *,
    refund_id: int,
    actor: str,
    reason: str,
    now: datetime,
    key: str | None = None,
) -> dict[str, Any]:
    """Send an unknown refund again with its own externalRefundId: the gateway answers a
    known id without refunding twice, so the answer settles it either way."""
    with db.transaction() as session:
        refund = _unknown_refund(session, refund_id)
        if refund.kind != "refund":
            raise ConflictError(
                f"refund {refund.id} is a reversal: it is never sent again; settle it by the "
                f"order's status (billing refunds settle {refund.id})"
            )
        attempt = session.get_one(ChargeAttempt, refund.attempt_id)
        gateway = gateway_of(session, gateway, attempt.subscription_id)
        request = RefundRequest(
            str(attempt.gateway_order_id), refund.amount, refund.external_refund_id
        )
        record_event(
            session,
            now,
            "refund_resent",
            f"{reason} (refund {refund.id} sent again with the same externalRefundId)",
            subscription_id=refund.subscription_id,
            invoice_id=refund.invoice_id,
            attempt_id=refund.attempt_id,
            actor=actor,
        )
    try:
        outcome = classify_action(gateway.refund(request))
    except GatewayError as exc:
        outcome = ActionOutcome(RefundState.UNKNOWN, f"not sent again: {exc}")
    if outcome.state is RefundState.FAILED and outcome.error_code is None:
        # Not sent this time (or refused by HTTP, not by the gateway's verdict on this id):
        # that says nothing about the first request, which may have refunded.
        outcome = ActionOutcome(
            RefundState.UNKNOWN,
            f"{outcome.message}; the first request's outcome is still unknown"[:300],
            None,
            outcome.http_status,
        )
    return settle(refund_id, outcome, actor, key, UNKNOWN)


def key_suffix(key_row: IdempotencyKey) -> str:
    """What the externalRefundId of a keyed refund ends with: one per key row (a key used
    again after it expired is a new row, so an externalRefundId is never reused)."""
    scoped = f"{key_row.id}\x00{key_row.principal}\x00{key_row.key}"
    return hashlib.sha256(scoped.encode()).hexdigest()[:24]


def keyed_external_id(attempt_id: int, key_row: IdempotencyKey) -> str:
    """The externalRefundId of a refund asked for with an Idempotency-Key."""
    return f"rf-{attempt_id}-{key_suffix(key_row)}"


def replay_refund(session: Session, earlier: IdempotencyKey) -> Stored | int:
    """A repeat of a keyed refund request: the first answer, the refund as it now stands
    (settled since), or, while its outcome is unknown, its id to be sent again."""
    refund = session.scalars(
        select(Refund).where(Refund.external_refund_id.like("rf-%-" + key_suffix(earlier)))
    ).first()
    if refund is not None and refund.state == UNKNOWN:
        return refund.id  # same key → same externalRefundId: safe to send again
    if earlier.response is not None:
        stored = json.loads(earlier.response)
        if refund is None or stored.get("state") == refund.state:
            return Stored(stored, replayed=True)
        return Stored(
            refund_view(refund) | {"refundable_left": refundable_left(session, refund.attempt_id)},
            True,
        )
    if refund is None:  # pragma: no cover - the key and the refund are committed together
        raise ConflictError("a request with this Idempotency-Key is still being processed")
    body = refund_view(refund) | {
        "note": "this refund request is still under way or its outcome was not recorded; "
        "it is not sent again"
    }
    return Stored(body, replayed=True)


def _unknown_refund(session: Session, refund_id: int) -> Refund:
    refund = session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
    if refund is None:
        raise NotFoundError(f"refund {refund_id} does not exist")
    if refund.state != UNKNOWN:
        raise ConflictError(f"refund {refund.id} is {refund.state}, not unknown: nothing to do")
    return refund


def _question(session: Session, refund: Refund) -> tuple[int, str, RefundQuestion]:
    attempt = session.get_one(ChargeAttempt, refund.attempt_id)

    def total(states: tuple[str, ...]) -> int:
        found = session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.attempt_id == refund.attempt_id,
                Refund.id != refund.id,
                Refund.state.in_(states),
            )
        )
        return int(found or 0)

    question = RefundQuestion(
        kind=refund.kind,
        external_refund_id=refund.external_refund_id,
        amount=refund.amount,
        refunded_before=total((RefundState.SUCCEEDED.value,)),
        others_unsettled=total(UNSETTLED),
    )
    return refund.id, attempt.order_number, question
