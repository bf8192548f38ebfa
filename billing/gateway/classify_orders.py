"""What the answer of deposit.do (capture) or decline.do (cancel an unpaid order) means.

Both answer ``{"errorCode": "0"}`` when done, like refund.do and reverse.do, so the reading
is :func:`~billing.gateway.classify_action.classify_action`'s: ACCEPTED, REFUSED (an
explicit other code, or a request that certainly never left) or UNKNOWN (it may have been
processed). On top of that, a refusal is marked ``moved_on`` when it says the order is no
longer in the state the call needs ("already deposited", "already declined", errorCode 7
"incorrect order state"): the order's status, asked next, tells what it became.

Pure: it never calls the gateway, and nothing here is ever read as "paid" — a capture is
paid only when getOrderStatusExtended.do says DEPOSITED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from billing.gateway.classify_action import RefundState, classify_action
from billing.gateway.results import GatewayResult


class OrderCall(StrEnum):
    """The answer to a deposit.do / decline.do call."""

    ACCEPTED = "accepted"  # errorCode 0: the gateway says it did it (the status confirms)
    REFUSED = "refused"  # an explicit refusal, or the request never left
    UNKNOWN = "unknown"  # sent, no clear answer: it may have been done


#: errorCode of deposit.do / decline.do when the order is in the wrong state for the call.
_WRONG_STATE_CODES: Final = frozenset({"7"})
#: Words of a refusal saying the order moved on (lower case, matched anywhere).
_MOVED_ON_TEXTS: Final = (
    "already",
    "correct state",
    "incorrect state",
    "wrong state",
    "order state",
    "deposited",
    "declined",
    "reversed",
)


@dataclass(frozen=True)
class OrderCallOutcome:
    """What one deposit.do / decline.do answer says, in our words."""

    result: OrderCall
    message: str
    error_code: str | None = None
    #: A refusal because the order is no longer in the state the call needs (settle by status).
    moved_on: bool = False

    @property
    def describe(self) -> str:
        """A short phrase for events and screens."""
        code = f"errorCode {self.error_code}: " if self.error_code else ""
        return f"{self.result.value} ({code}{self.message})"[:300]


_BY_STATE: Final = {
    RefundState.SUCCEEDED: OrderCall.ACCEPTED,
    RefundState.FAILED: OrderCall.REFUSED,
    RefundState.UNKNOWN: OrderCall.UNKNOWN,
    RefundState.REQUESTED: OrderCall.UNKNOWN,
}


def classify_order_call(result: GatewayResult) -> OrderCallOutcome:
    """Classify the result of one deposit.do or decline.do call (see the module docstring)."""
    action = classify_action(result)
    outcome = _BY_STATE[action.state]
    moved_on = False
    if outcome is OrderCall.REFUSED and action.error_code is not None:
        text = action.message.lower()
        moved_on = action.error_code in _WRONG_STATE_CODES or any(
            needle in text for needle in _MOVED_ON_TEXTS
        )
    return OrderCallOutcome(outcome, action.message, action.error_code, moved_on)
