"""The rate limiter never waits for a slot past a charge's send deadline (its lease)."""

from __future__ import annotations

import pytest

from billing.gateway.port import ChargeRequest
from billing.gateway.rate_limit import RateLimitedGateway
from billing.gateway.results import RATE_LIMITED, ConnectionFailed
from tests.unit.gateway.test_ratelimit import FakeClock, RecordingGateway, ScriptedLimiter


def _payment(within: float | None) -> ChargeRequest:
    return ChargeRequest(
        order_number="INV-1-1", binding_id="b-1", amount=100, currency="643", send_within=within
    )


@pytest.mark.parametrize(
    ("send_within", "max_wait", "gave_up_after"),
    [
        (7.0, 60.0, 7.0),  # the lease ends first: no slot is waited for past it
        (90.0, 60.0, 60.0),  # max_wait ends first
        (None, 60.0, 60.0),  # no deadline: max_wait as before
    ],
)
def test_a_charge_waits_for_a_slot_no_longer_than_its_deadline(
    send_within: float | None, max_wait: float, gave_up_after: float
) -> None:
    inner, clock = RecordingGateway(), FakeClock()
    gateway = RateLimitedGateway(
        inner, ScriptedLimiter([], default=False), max_wait=max_wait, sleep=clock.sleep, clock=clock
    )
    result = gateway.charge(_payment(send_within))
    assert result == ConnectionFailed(
        f"rate limit: no slot within {gave_up_after:g}s", reason=RATE_LIMITED
    )
    assert clock.now == pytest.approx(1000.0 + gave_up_after)
    assert inner.calls == []


def test_a_slot_granted_after_the_deadline_is_not_used() -> None:
    # The slot would come after 10 s; the lease leaves 3 s: the charge is not sent at all.
    inner, clock = RecordingGateway(), FakeClock()
    limiter = ScriptedLimiter([False] * 200 + [True])
    gateway = RateLimitedGateway(
        inner, limiter, sleep=clock.sleep, clock=clock, poll_interval=0.05, jitter=lambda: 0.5
    )
    assert gateway.charge(_payment(3.0)).reason == RATE_LIMITED  # type: ignore[union-attr]
    assert inner.calls == []
    assert clock.now <= 1003.0


def test_no_time_left_means_not_sent_without_asking_for_a_slot() -> None:
    inner, clock = RecordingGateway(), FakeClock()
    limiter = ScriptedLimiter([], default=True)
    gateway = RateLimitedGateway(inner, limiter, sleep=clock.sleep, clock=clock)
    assert gateway.charge(_payment(0.0)).reason == RATE_LIMITED  # type: ignore[union-attr]
    assert inner.calls == [] and limiter.calls == 0
