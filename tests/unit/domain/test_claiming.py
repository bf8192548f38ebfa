"""The one claim rule of the single and the batch charge paths."""

from __future__ import annotations

import pytest

from billing.domain.claiming import Step, claim_verdict
from billing.domain.model import AttemptState, AttemptTrigger

S, M = AttemptTrigger.SCHEDULED, AttemptTrigger.MANUAL


@pytest.mark.parametrize(
    ("state", "trigger", "invoice", "subscription", "allowed", "step", "reason"),
    [
        (AttemptState.PENDING, S, "open", "active", True, Step.SEND, ""),
        (AttemptState.PENDING, S, "open", "past_due", True, Step.SEND, ""),
        # never sent again: only the order status settles what may be at the gateway
        (AttemptState.SENDING, S, "open", "active", True, Step.RECONCILE, ""),
        (AttemptState.UNKNOWN, S, "open", "active", False, Step.RECONCILE, ""),
        (AttemptState.PAID, S, "paid", "active", True, Step.FINAL, ""),
        (AttemptState.DECLINED, S, "open", "active", True, Step.FINAL, ""),
        (AttemptState.NEEDS_OPERATOR, S, "open", "active", True, Step.FINAL, ""),
        # a closed invoice is never charged, paused or not
        (AttemptState.PENDING, S, "void", "active", True, Step.SKIP, "invoice_closed"),
        (AttemptState.PENDING, S, "paid", "active", False, Step.SKIP, "invoice_closed"),
        (AttemptState.PENDING, S, "open", "active", False, Step.HOLD, ""),
        (AttemptState.PENDING, S, "open", "paused", True, Step.SKIP, "subscription_paused"),
        (AttemptState.PENDING, S, "open", "canceled", True, Step.SKIP, "subscription_canceled"),
        (AttemptState.PENDING, S, "open", "held", True, Step.SKIP, "subscription_held"),
        # an operator's manual retry of a held subscription goes
        (AttemptState.PENDING, M, "open", "held", True, Step.SEND, ""),
        (AttemptState.PENDING, M, "open", "active", False, Step.HOLD, ""),
    ],
)
def test_claim_verdict(
    state: AttemptState,
    trigger: AttemptTrigger,
    invoice: str,
    subscription: str,
    allowed: bool,
    step: Step,
    reason: str,
) -> None:
    verdict = claim_verdict(state, trigger, invoice, subscription, charging_allowed=allowed)
    assert verdict.step is step
    assert verdict.reason == reason
