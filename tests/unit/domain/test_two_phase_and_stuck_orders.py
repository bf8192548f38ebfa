"""The pure decisions of two-phase captures and stuck orders, table by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain import circuit_breaker as breaker
from billing.domain.circuit_breaker import Circuit
from billing.domain.model import Category
from billing.domain.stuck_orders import STUCK_ORDER_DECLINED, declined_by_us, should_decline
from billing.domain.two_phase import (
    CAPTURE_REFUSED,
    CaptureFailure,
    CaptureResult,
    HeldStep,
    TwoPhase,
    after_held,
)

ON_REVERSE = TwoPhase(enabled=True, on_capture_failure=CaptureFailure.REVERSE)
ON_OPERATOR = TwoPhase(enabled=True, on_capture_failure=CaptureFailure.OPERATOR)
OFF = TwoPhase()


@pytest.mark.parametrize(
    ("settings", "capture", "step"),
    [
        # a one-phase merchant never captures: an unknown outcome as before
        (OFF, None, HeldStep.LEAVE),
        (OFF, CaptureResult.REFUSED, HeldStep.LEAVE),
        # never sent: capture it
        (ON_REVERSE, None, HeldStep.CAPTURE),
        (ON_OPERATOR, None, HeldStep.CAPTURE),
        # sent once: never sent again, whatever became of it, unless refused
        (ON_REVERSE, CaptureResult.SENT, HeldStep.WAIT),
        (ON_REVERSE, CaptureResult.UNKNOWN, HeldStep.WAIT),
        (ON_REVERSE, CaptureResult.ACCEPTED, HeldStep.WAIT),
        (ON_OPERATOR, CaptureResult.UNKNOWN, HeldStep.WAIT),
        # refused: release the hold or hand it over, as the setting says
        (ON_REVERSE, CaptureResult.REFUSED, HeldStep.RELEASE),
        (ON_REVERSE, CaptureResult.RELEASING, HeldStep.RELEASE),
        (ON_OPERATOR, CaptureResult.REFUSED, HeldStep.OPERATOR),
    ],
)
def test_what_follows_a_held_order(
    settings: TwoPhase, capture: CaptureResult | None, step: HeldStep
) -> None:
    assert after_held(settings, capture) is step


T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("decline_after", "sent_at", "declined_at", "now", "due"),
    [
        (30 * M, T0, None, T0 + 29 * M, False),  # still young: keep polling
        (30 * M, T0, None, T0 + 30 * M, True),  # stuck: decline it
        (30 * M, T0, T0 + 30 * M, T0 + 45 * M, False),  # declined a moment ago: wait
        (30 * M, T0, T0 + 30 * M, T0 + 60 * M, True),  # still not final: decline again
        (None, T0, None, T0 + 600 * M, False),  # turned off in the policy
        (30 * M, None, None, T0 + 600 * M, False),  # never sent: nothing to decline
    ],
)
def test_when_a_stuck_order_is_declined(
    decline_after: timedelta | None,
    sent_at: datetime | None,
    declined_at: datetime | None,
    now: datetime,
    due: bool,
) -> None:
    assert (
        should_decline(
            decline_after=decline_after, sent_at=sent_at, declined_at=declined_at, now=now
        )
        is due
    )


@pytest.mark.parametrize(
    ("declined_at", "order_status", "action", "ours"),
    [
        (T0, 6, 4005, True),  # our decline.do
        (T0, 6, -2007, True),  # the order's session ran out meanwhile
        (T0, 6, None, True),
        (T0, 6, 116, False),  # the bank declined the card: a real decline
        (None, 6, 4005, False),  # we never declined it
        (T0, 2, 0, False),  # paid meanwhile
        (T0, 0, -30001, False),  # still pending
    ],
)
def test_which_declines_are_ours(
    declined_at: datetime | None, order_status: int, action: int | None, ours: bool
) -> None:
    assert declined_by_us(declined_at=declined_at, order_status=order_status, action=action) is ours


@pytest.mark.parametrize("reason", [STUCK_ORDER_DECLINED, CAPTURE_REFUSED])
def test_our_own_declines_and_releases_are_not_gateway_outages(reason: str) -> None:
    after = breaker.after_outcome(
        Circuit(consecutive_failures=2),
        Category.TRANSIENT,
        reason,
        T0,
        pause_backoff=(M,),
        outage_threshold=3,
    )
    assert after == Circuit(consecutive_failures=2)
    outage = breaker.after_outcome(
        Circuit(consecutive_failures=2),
        Category.TRANSIENT,
        "http_5xx",
        T0,
        pause_backoff=(M,),
        outage_threshold=3,
    )
    assert outage.state != Circuit().state
