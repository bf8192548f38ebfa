"""Two-phase merchants: what to do with an order the gateway holds (APPROVED, orderStatus 1).

A two-phase merchant's recurrentPayment.do only blocks the customer's funds; deposit.do
captures them. :func:`after_held` decides the next step for an attempt whose order is
still held, from what was already done for it: capture it (deposit.do, sent at most once
per attempt), wait for the status to settle an earlier capture (a timeout is never sent
again blindly), or, when the gateway refused the capture, release the hold (reverse.do)
or hand it to an operator, as the merchant's setting says.

Pure: no I/O, no clock. It never says "paid" (only a DEPOSITED status does).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: Outcome reasons of the two-phase flow.
CAPTURE_PENDING = "capture_pending"  # captured (or maybe); waiting for DEPOSITED
CAPTURE_REFUSED = "capture_refused"  # refused; the hold released: retried with a new order
HOLD_RELEASED = "hold_released"  # an operator released the hold


class CaptureFailure(StrEnum):
    """What follows a capture the gateway refused (the order still held)."""

    #: Release the hold with reverse.do; the invoice is retried later with a new order.
    REVERSE = "reverse"
    #: Leave the hold and hand the attempt to an operator (capture or release by hand).
    OPERATOR = "operator"


@dataclass(frozen=True)
class TwoPhase:
    """The merchant account's two-phase settings (one value, so it can move into an
    account definition as it is)."""

    #: Held (APPROVED) orders are captured automatically with deposit.do.
    enabled: bool = False
    on_capture_failure: CaptureFailure = CaptureFailure.REVERSE


class CaptureResult(StrEnum):
    """What is known about this attempt's capture (stored on the attempt)."""

    SENT = "sent"  # stored before deposit.do; no answer recorded (yet)
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # sent, no clear answer
    RELEASING = "releasing"  # refused; reverse.do sent to release the hold


class HeldStep(StrEnum):
    """The next step for an attempt whose order the status query says is held."""

    #: Today's behaviour for a one-phase merchant: an unknown outcome, reconciled by status.
    LEAVE = "leave"
    CAPTURE = "capture"
    #: An earlier capture may still be processed: ask for the status again later.
    WAIT = "wait"
    RELEASE = "release"
    OPERATOR = "operator"


def after_held(settings: TwoPhase, capture: CaptureResult | None) -> HeldStep:
    """The next step for an attempt whose order is held; ``capture`` is what is known of
    its capture (None: never sent)."""
    if not settings.enabled:
        return HeldStep.LEAVE
    if capture is None:
        return HeldStep.CAPTURE
    if capture in (CaptureResult.REFUSED, CaptureResult.RELEASING):
        if settings.on_capture_failure is CaptureFailure.OPERATOR:
            return HeldStep.OPERATOR
        return HeldStep.RELEASE  # releasing a hold again is harmless: it takes no money
    return HeldStep.WAIT
