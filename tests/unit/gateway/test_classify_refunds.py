"""What an order's status says about a refund or reversal whose answer was lost."""

from __future__ import annotations

from typing import Any

import pytest

from billing.gateway.classify_action import RefundState
from billing.gateway.classify_refunds import RefundQuestion, refund_by_status
from billing.gateway.results import GatewayResult, JsonReply, ReadTimedOut

OURS = "rf-1-abc"


def _status(state: str, order_status: int, **extra: Any) -> JsonReply:
    info = {"paymentState": state} | extra.pop("info", {})
    return JsonReply(
        200,
        {"errorCode": "0", "orderStatus": order_status, "paymentAmountInfo": info} | extra,
    )


def _nested(state: str, refunds: list[dict[str, Any]]) -> JsonReply:
    """all2pay's shape: ``state`` on top, the refunds block inside orderStatusResultModel."""
    return JsonReply(200, {"state": state, "orderStatusResultModel": {"refunds": refunds}})


REFUND = RefundQuestion("refund", OURS, 1000)
REFUND_AFTER_ONE = RefundQuestion("refund", OURS, 1000, refunded_before=500)
REFUND_WITH_ANOTHER = RefundQuestion("refund", OURS, 1000, others_unsettled=1000)
REVERSE = RefundQuestion("reverse", "rv-1-abc", 49900)
NOT_FOUND = JsonReply(200, {"errorCode": "6", "errorMessage": "Unregistered orderId"})


@pytest.mark.parametrize(
    ("result", "question", "expected"),
    [
        # the refunds block names it: it happened; it does not: it did not
        (_status("REFUNDED", 4, refunds=[{"externalRefundId": OURS}]), REFUND, "succeeded"),
        (_status("REFUNDED", 4, refunds=[{"externalRefundId": "rf-9"}]), REFUND, "failed"),
        (_status("DEPOSITED", 2, refunds=[]), REFUND, "failed"),
        (_nested("REFUNDED", [{"externalRefundId": OURS, "amount": 1000}]), REFUND, "succeeded"),
        (_nested("DEPOSITED", []), REFUND, "failed"),
        # no refunds block: the refunded amount, when it can only mean this refund
        (_status("REFUNDED", 4, info={"refundedAmount": 1000}), REFUND, "succeeded"),
        (_status("REFUNDED", 4, info={"refundedAmount": 1500}), REFUND_AFTER_ONE, "succeeded"),
        (_status("REFUNDED", 4, info={"refundedAmount": 500}), REFUND_AFTER_ONE, "failed"),
        (_status("REFUNDED", 4, info={"refundedAmount": 1000}), REFUND_WITH_ANOTHER, "unknown"),
        (_status("REFUNDED", 4, info={"refundedAmount": 700}), REFUND, "unknown"),
        (_status("DEPOSITED", 2), REFUND, "failed"),
        (_status("REFUNDED", 4), REFUND, "unknown"),
        # a reversal: the order REVERSED, or still DEPOSITED
        (_status("REVERSED", 3), REVERSE, "succeeded"),
        (_nested("REVERSED", []), REVERSE, "succeeded"),
        (_status("DEPOSITED", 2), REVERSE, "failed"),
        (_status("REFUNDED", 4), REVERSE, "unknown"),
        # no readable status: nothing is decided
        (ReadTimedOut("read timeout"), REFUND, "unknown"),
        (
            JsonReply(200, {"errorCode": "6", "errorMessage": "Unregistered orderId"}),
            REFUND,
            "unknown",
        ),
        (JsonReply(200, {"errorCode": "7", "errorMessage": "System error"}), REVERSE, "unknown"),
        (JsonReply(200, {"errorCode": "0"}), REFUND, "unknown"),
    ],
)
def test_a_lost_refund_is_settled_only_by_what_the_order_status_shows(
    result: GatewayResult, question: RefundQuestion, expected: str
) -> None:
    outcome = refund_by_status(result, question)
    assert outcome.state is RefundState(expected), outcome.message
