"""Giving money back: refund.do (whole or partial) and reverse.do (same day).

Money rules kept here:

* a refund's ``externalRefundId`` is derived once per logical request (from its
  Idempotency-Key when there is one) and committed in ``refunds`` *before* ``refund.do`` is
  called, so a repeated click finds the first request instead of refunding twice;
* partial refunds never exceed the paid amount minus earlier refunds (those whose outcome is
  unknown count as taken until someone checks them);
* a refund or reversal whose outcome is unknown (timeout) stays ``unknown`` and says so: it is
  never reported as a success. It is settled by the order's status (``settle_unknown``), and
  a refund may be sent again only under its own externalRefundId (``retry_unknown``, or a
  repeat with the same Idempotency-Key): see :mod:`.refund_recovery`;
* a reversal is possible only on the gateway's banking day of the payment (its timezone
  is a setting), not the UTC date.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.errors import (
    ConflictError,
    GatewayError,
    ValidationError,
)
from billing.gateway.classify_action import (
    ActionOutcome,
    RefundState,
    classify_action,
)
from billing.gateway.port import Gateway, RefundRequest, ReverseRequest
from billing.gateway.results import GatewayResult
from billing.services.accounts import gateway_of
from billing.services.actions import refund_recovery
from billing.services.actions.refund_rows import (
    check_not_reversed,
    new_refund,
    refundable_attempt,
    refundable_left,
    taken_amount,
)
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.idempotency import (
    DEFAULT_TTL,
    Stored,
    check_key,
    claim_key,
    request_hash,
)
from billing.services.ports import Clock, system_clock
from billing.services.read.views import (
    refund_view,
)
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
    IdempotencyKey,
    Refund,
)


@dataclass(frozen=True)
class _RefundAsk:
    """A refund request, cleaned: who asks, why, with which key, for what."""

    actor: str
    reason: str
    key: str | None
    digest: str
    now: datetime
    attempt_id: int | None
    invoice_id: int | None
    amount: int | None


@dataclass(frozen=True)
class _Pending:
    """A ``refunds`` row committed as requested: what to send to ``refund.do``."""

    refund_id: int
    order_id: str
    amount: int
    external: str
    gateway: Gateway  # the subscription's merchant account


def _ask_gateway(call: Callable[[], GatewayResult]) -> ActionOutcome:
    """What a refund.do / reverse.do answer means; a request the gateway's rules refuse
    before sending is a failure (nothing was sent)."""
    try:
        return classify_action(call())
    except GatewayError as exc:
        return ActionOutcome(RefundState.FAILED, f"not sent: {exc}")


class RefundActions:
    """Refunds and reversals of paid attempts, through the gateway port."""

    def __init__(
        self,
        db: Database,
        *,
        gateway: Gateway,
        clock: Clock = system_clock,
        banking_timezone: str = "Europe/Moscow",
        idempotency_ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.clock = clock
        #: reverse.do is possible only on the gateway's banking day of the payment.
        self.banking_zone = ZoneInfo(banking_timezone)
        self.idempotency_ttl = idempotency_ttl

    def refund(
        self,
        *,
        actor: str,
        reason: str,
        attempt_id: int | None = None,
        invoice_id: int | None = None,
        amount: int | None = None,
        idempotency_key: str | None = None,
    ) -> Stored:
        """Refund (part of) a paid attempt through ``refund.do``.

        ``amount`` None refunds what is left. With an Idempotency-Key, a repeated request
        returns the first answer (or the refund's current state while it is under way).
        """
        actor, reason, key = clean_actor(actor), clean_reason(reason), check_key(idempotency_key)
        if (attempt_id is None) == (invoice_id is None):
            raise ValidationError("give either an attempt id or an invoice id")
        if amount is not None and (isinstance(amount, bool) or amount <= 0):
            raise ValidationError("amount must be a positive whole number of minor units")
        payload = {
            "attempt_id": attempt_id,
            "invoice_id": invoice_id,
            "amount": amount,
            "reason": reason,
        }
        ask = _RefundAsk(
            actor=actor,
            reason=reason,
            key=key,
            digest=request_hash("refund", payload),
            now=self.clock(),
            attempt_id=attempt_id,
            invoice_id=invoice_id,
            amount=amount,
        )
        recorded = self._record_refund(ask)
        if isinstance(recorded, Stored):
            return recorded
        if isinstance(recorded, int):  # unknown: sent again, same externalRefundId
            body = refund_recovery.resend_refund(
                self.db,
                self.gateway,
                self._settle_refund,
                refund_id=recorded,
                actor=actor,
                reason=f"{reason} (repeated with the same Idempotency-Key)",
                now=ask.now,
                key=key,
            )
            return Stored(body, replayed=True)
        request = RefundRequest(recorded.order_id, recorded.amount, recorded.external)
        outcome = _ask_gateway(lambda: recorded.gateway.refund(request))
        return Stored(self._settle_refund(recorded.refund_id, outcome, actor, key))

    def _record_refund(self, ask: _RefundAsk) -> Stored | int | _Pending:
        """Record the request in its own transaction; with a key, once more if a concurrent
        request with the same key committed first (this round then finds it)."""
        try:
            with self.db.transaction() as session:
                return self._record_in(session, ask)
        except IntegrityError:
            if ask.key is None:
                raise
        with self.db.transaction() as session:
            return self._record_in(session, ask)

    def _record_in(self, session: Session, ask: _RefundAsk) -> Stored | int | _Pending:
        """Under the attempt's row lock: a repeat's answer (or the id of its unknown refund
        to send again), or the new ``refunds`` row (and key row) committed before the call."""
        # The attempt's row lock first: a concurrent repeat waits here, then finds the
        # first request's key (committed with its refund row).
        attempt = refundable_attempt(session, ask.attempt_id, ask.invoice_id)
        if ask.key is not None:
            earlier = claim_key(
                session,
                ask.key,
                "refund",
                ask.digest,
                principal=ask.actor,
                now=ask.now,
                ttl=self.idempotency_ttl,
            )
            if earlier is not None:
                return refund_recovery.replay_refund(session, earlier)
        check_not_reversed(session, attempt)
        taken = taken_amount(session, attempt.id)
        left = attempt.amount - taken
        if left <= 0:
            raise ConflictError(
                f"attempt {attempt.id} is already refunded in full "
                f"({taken} of {attempt.amount}, counting refunds not yet settled)"
            )
        to_refund = left if ask.amount is None else ask.amount
        if to_refund > left:
            raise ConflictError(
                f"cannot refund {to_refund}: only {left} of the {attempt.amount} "
                f"paid is left to refund ({taken} already refunded or under way)"
            )
        external = f"rf-{attempt.id}-{secrets.token_hex(12)}"
        if ask.key is not None:
            # The key row first: the externalRefundId is derived from its id, so a replay
            # finds this refund, and a key used again after it expired (a new row) never
            # reuses an externalRefundId.
            key_row = IdempotencyKey(
                principal=ask.actor,
                key=ask.key,
                endpoint="refund",
                request_hash=ask.digest,
                response=None,
                created_at=ask.now,
            )
            session.add(key_row)
            session.flush()
            external = refund_recovery.keyed_external_id(attempt.id, key_row)
        refund = new_refund(
            session, attempt, "refund", to_refund, external, ask.actor, ask.reason, ask.now
        )
        session.flush()
        gateway = gateway_of(session, self.gateway, attempt.subscription_id)
        return _Pending(refund.id, str(attempt.gateway_order_id), to_refund, external, gateway)

    def settle_unknown(self, refund_id: int | None = None, *, actor: str) -> list[dict[str, Any]]:
        """Settle refunds and reversals whose outcome is unknown by the order's status."""
        return refund_recovery.settle_unknown(
            self.db,
            self.gateway,
            self._settle_refund,
            refund_id=refund_id,
            actor=clean_actor(actor),
        )

    def retry_unknown(self, refund_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Send a refund whose outcome is unknown again, with the same externalRefundId."""
        return refund_recovery.resend_refund(
            self.db,
            self.gateway,
            self._settle_refund,
            refund_id=refund_id,
            actor=clean_actor(actor),
            reason=clean_reason(reason),
            now=self.clock(),
        )

    def reverse(self, attempt_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Cancel a payment made today (the gateway's banking day) through ``reverse.do``:
        the whole amount."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            attempt = refundable_attempt(session, attempt_id, None)
            gateway = gateway_of(session, self.gateway, attempt.subscription_id)
            paid = attempt.finished_at or attempt.sent_at or attempt.created_at
            paid_on = paid.astimezone(self.banking_zone).date()
            if paid_on != now.astimezone(self.banking_zone).date():
                raise ConflictError(
                    f"attempt {attempt.id} was paid on {paid_on:%Y-%m-%d} ({self.banking_zone.key}"
                    " banking day): a reversal is only possible on the day of payment; "
                    "refund it instead"
                )
            check_not_reversed(session, attempt)
            taken = taken_amount(session, attempt.id)
            if taken:
                raise ConflictError(
                    f"attempt {attempt.id} already has refunds ({taken} refunded or under way): "
                    "refund the rest instead"
                )
            refund = new_refund(
                session,
                attempt,
                "reverse",
                attempt.amount,
                f"rv-{attempt.id}-{secrets.token_hex(12)}",
                actor,
                reason,
                now,
            )
            session.flush()
            refund_id, order_id = refund.id, str(attempt.gateway_order_id)
        outcome = _ask_gateway(lambda: gateway.reverse(ReverseRequest(order_id)))
        return self._settle_refund(refund_id, outcome, actor, None)

    def _settle_refund(
        self,
        refund_id: int,
        outcome: ActionOutcome,
        actor: str,
        key: str | None,
        from_state: str = RefundState.REQUESTED.value,
    ) -> dict[str, Any]:
        now = self.clock()
        with self.db.transaction() as session:
            refund = session.get_one(Refund, refund_id, with_for_update=True)
            if refund.state != from_state:  # settled meanwhile (a concurrent settle or retry)
                return refund_view(refund) | {
                    "refundable_left": refundable_left(session, refund.attempt_id)
                }
            refund.state = outcome.state.value
            refund.error_code = outcome.error_code
            refund.error_message = outcome.message[:512]
            refund.http_status = outcome.http_status
            refund.updated_at = now
            if outcome.state in (RefundState.SUCCEEDED, RefundState.FAILED):
                refund.finished_at = now
            words = {
                RefundState.SUCCEEDED: "accepted by the gateway",
                RefundState.FAILED: "refused",
                RefundState.UNKNOWN: "OUTCOME UNKNOWN (check the order at the gateway before "
                "trying again)",
                RefundState.REQUESTED: "requested",
            }[outcome.state]
            record_event(
                session,
                now,
                f"{refund.kind}_{outcome.state.value}",
                f"{refund.kind} {refund.id} of {refund.amount} {refund.currency}: {words}: "
                f"{outcome.message}",
                subscription_id=refund.subscription_id,
                invoice_id=refund.invoice_id,
                attempt_id=refund.attempt_id,
                from_state=from_state,
                to_state=outcome.state.value,
                actor=actor,
            )
            attempt = session.get_one(ChargeAttempt, refund.attempt_id, with_for_update=True)
            returned = session.scalar(
                select(func.coalesce(func.sum(Refund.amount), 0)).where(
                    Refund.attempt_id == attempt.id, Refund.state == RefundState.SUCCEEDED
                )
            )
            if attempt.needs_refund and int(returned or 0) >= attempt.amount:
                attempt.needs_refund = False
                attempt.updated_at = now
                record_event(
                    session,
                    now,
                    "double_charge_refunded",
                    f"attempt {attempt.id}: the second charge was given back in full",
                    subscription_id=refund.subscription_id,
                    invoice_id=refund.invoice_id,
                    attempt_id=attempt.id,
                    actor=actor,
                )
            body = refund_view(refund) | {"refundable_left": refundable_left(session, attempt.id)}
            if key is not None:
                stored = session.scalars(
                    select(IdempotencyKey).where(
                        IdempotencyKey.principal == actor,
                        IdempotencyKey.endpoint == "refund",
                        IdempotencyKey.key == key,
                    )
                ).one_or_none()
                if stored is not None:
                    stored.response = json.dumps(body)
                    stored.completed_at = now
            return body
