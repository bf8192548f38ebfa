"""What an order's status says about one refund or reversal whose answer was lost.

It decides, from a getOrderStatusExtended.do answer, whether a refund happened (its
``externalRefundId`` in the order's ``refunds`` block; without that block, the order's
refunded amount when it can only mean this refund) or a reversal happened (the order is
REVERSED). It must never call the gateway, and never report a success the status does not
show: when the status cannot tell, the answer stays UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from billing.gateway import codes
from billing.gateway.classify_action import ActionOutcome, RefundState
from billing.gateway.models import OrderStatusResponse
from billing.gateway.results import GatewayResult, JsonReply


@dataclass(frozen=True)
class RefundQuestion:
    """The refund (or reversal) asked about, and what is already known of the order.

    ``refunded_before``: refunds of this order already settled as succeeded;
    ``others_unsettled``: other refunds of this order whose outcome is not known."""

    kind: str
    external_refund_id: str
    amount: int
    refunded_before: int = 0
    others_unsettled: int = 0


def refund_by_status(result: GatewayResult, question: RefundQuestion) -> ActionOutcome:
    """SUCCEEDED / FAILED when the order status shows it; UNKNOWN otherwise."""
    if not isinstance(result, JsonReply) or not isinstance(result.body, dict):
        return _unknown("the status query got no readable answer")
    try:
        order = OrderStatusResponse.model_validate(result.body)
    except ValidationError:  # pragma: no cover - not reachable for a dict (see models)
        return _unknown("the status answer could not be read")
    if order.error_code not in (None, "0"):
        return _unknown(f"the status query failed (errorCode {order.error_code})")
    families = {codes.ORDER_STATUS_FAMILIES.get(s, "?") for s in order.order_statuses}
    families.update(codes.STATE_FAMILIES.get(s, "?") for s in order.states)
    if not families:
        return _unknown("the status answer says nothing about the order's state")
    if question.kind == "reverse":
        return _reversal(families)
    listed = _refunds_block(result.body)
    if listed is not None:
        if any(_external_id(entry) == question.external_refund_id for entry in listed):
            return ActionOutcome(RefundState.SUCCEEDED, "listed in the order's refunds")
        return ActionOutcome(
            RefundState.FAILED,
            "not in the order's refunds: it did not happen (it may be sent again)",
        )
    return _by_amount(order, families, question)


def _reversal(families: set[str]) -> ActionOutcome:
    if families == {codes.REVERSED}:
        return ActionOutcome(RefundState.SUCCEEDED, "the order is REVERSED")
    if families == {codes.PAID}:
        return ActionOutcome(
            RefundState.FAILED, "the order is still DEPOSITED: the reversal did not happen"
        )
    return _unknown(f"the order's state ({', '.join(sorted(families))}) does not tell")


def _by_amount(
    order: OrderStatusResponse, families: set[str], question: RefundQuestion
) -> ActionOutcome:
    refunded = _refunded_amount(order)
    if refunded is not None:
        if refunded == question.refunded_before:
            return ActionOutcome(
                RefundState.FAILED,
                f"the order's refunded amount ({refunded}) does not include it: "
                "it did not happen (it may be sent again)",
            )
        if refunded == question.refunded_before + question.amount and not (
            question.others_unsettled
        ):
            return ActionOutcome(
                RefundState.SUCCEEDED, f"the order's refunded amount is now {refunded}"
            )
        return _unknown(f"the order's refunded amount ({refunded}) does not tell which refund")
    if families == {codes.PAID} and not question.refunded_before:
        return ActionOutcome(
            RefundState.FAILED, "the order is still DEPOSITED, never refunded: it did not happen"
        )
    return _unknown(f"the order's state ({', '.join(sorted(families))}) does not tell")


def _refunded_amount(order: OrderStatusResponse) -> int | None:
    for block in (order, order.result_model):
        info = block.payment_amount_info if block is not None else None
        if info is not None and info.refunded_amount is not None:
            return info.refunded_amount
    return None


def _refunds_block(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The order's ``refunds`` list (top level, or all2pay's nested block); None if absent."""
    for holder in (body, body.get("orderStatusResultModel")):
        if isinstance(holder, dict) and isinstance(holder.get("refunds"), list):
            return [entry for entry in holder["refunds"] if isinstance(entry, dict)]
    return None


def _external_id(entry: dict[str, Any]) -> str | None:
    value = entry.get("externalRefundId")
    return None if value is None else str(value).strip()


def _unknown(why: str) -> ActionOutcome:
    return ActionOutcome(RefundState.UNKNOWN, why)
