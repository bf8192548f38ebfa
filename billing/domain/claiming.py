"""Whether an attempt a worker was handed may be sent now: the one rule of the single and
the batch charge paths.

Pure: it reads the attempt's state and trigger, its invoice's and subscription's status and
whether charging is paused, and says what to do. It must never send, lock or write anything;
an attempt that may already be at the gateway is never ruled "send" (only its order status
settles it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from billing.domain.model import (
    FINAL_STATES,
    AttemptState,
    AttemptTrigger,
    InvoiceStatus,
    SubscriptionStatus,
)

#: Subscriptions whose automatic attempts are closed unsent (an operator's manual one goes).
STOPPED = frozenset(
    {SubscriptionStatus.PAUSED, SubscriptionStatus.CANCELED, SubscriptionStatus.HELD}
)


class Step(StrEnum):
    SEND = "send"  # move to ``sending`` (lease from the database clock) and call once
    SKIP = "skip"  # close unsent: no money moved (the reason says why)
    HOLD = "paused"  # charging is paused: leave it pending, the scheduler sends it again
    FINAL = "already_final"  # settled already: nothing to do
    RECONCILE = "reconcile"  # may have reached the gateway: ask its order status


@dataclass(frozen=True)
class Verdict:
    step: Step
    #: For SKIP: the attempt's reason slug and the human text.
    reason: str = ""
    why: str = ""


def claim_verdict(
    state: AttemptState,
    trigger: AttemptTrigger,
    invoice_status: str,
    subscription_status: str,
    *,
    charging_allowed: bool,
) -> Verdict:
    """What a worker does with an attempt it was handed (redelivered messages included)."""
    if state in FINAL_STATES:
        return Verdict(Step.FINAL)
    if state is not AttemptState.PENDING:
        return Verdict(Step.RECONCILE)
    if invoice_status != InvoiceStatus.OPEN:
        return Verdict(Step.SKIP, "invoice_closed", f"invoice is {invoice_status}")
    if not charging_allowed:
        return Verdict(Step.HOLD)
    if subscription_status in STOPPED and trigger is not AttemptTrigger.MANUAL:
        return Verdict(
            Step.SKIP,
            f"subscription_{subscription_status}",
            f"subscription is {subscription_status}",
        )
    return Verdict(Step.SEND)
