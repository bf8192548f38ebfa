"""RateLimitedGateway with a limiter that books slots: it waits for its slot, never polls
while the limiter answers, takes a new slot when it woke too late, and never sends past its
deadline. Fake clocks and scripted limiters: no Redis, no timing."""

from __future__ import annotations

from typing import Any

import pytest

from billing.gateway.port import ChargeRequest
from billing.gateway.rate_limit import (
    LocalCallLimiter,
    RateLimitedGateway,
    RedisCallLimiter,
    SlotLimiter,
)
from billing.gateway.results import RATE_LIMITED, ConnectionFailed, GatewayResult, JsonReply
from tests.support.fakes import PAYMENT


class Clock:
    """A fake monotonic clock whose sleep may oversleep (a busy machine)."""

    def __init__(self, oversleep: list[float] | None = None) -> None:
        self.now = 1000.0
        self.oversleep = list(oversleep or [])
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds + (self.oversleep.pop(0) if self.oversleep else 0.0)


class BookingLimiter:
    """Answers ``reserve`` from a script (seconds to the slot, or None); never polled."""

    def __init__(self, answers: list[float | None]) -> None:
        self.answers = list(answers)
        self.asked: list[float] = []

    def acquire(self) -> bool:
        raise AssertionError("a booking limiter is never polled")

    def reserve(self, max_ahead: float) -> float | None:
        self.asked.append(max_ahead)
        return self.answers.pop(0) if self.answers else None


class Gateway:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.reply = JsonReply(200, {"errorCode": "0"})
        self.clock: Clock | None = None

    def charge(self, request: ChargeRequest) -> GatewayResult:
        self.calls.append(("charge", self.clock() if self.clock else 0.0))
        return self.reply

    def order_status(self, **kwargs: Any) -> GatewayResult:
        self.calls.append(("order_status", self.clock() if self.clock else 0.0))
        return self.reply


def _gateway(limiter: Any, clock: Clock, **kwargs: Any) -> tuple[RateLimitedGateway, Gateway]:
    inner = Gateway()
    inner.clock = clock
    gateway = RateLimitedGateway(
        inner, limiter, sleep=clock.sleep, clock=clock, jitter=lambda: 0.5, **kwargs
    )
    return gateway, inner


def test_both_limiters_book_slots() -> None:
    assert isinstance(LocalCallLimiter(5), SlotLimiter)
    assert issubclass(RedisCallLimiter, SlotLimiter)


@pytest.mark.parametrize(
    ("answers", "oversleep", "send_within", "sleeps", "asked", "sent_at", "missed"),
    [
        # A slot now: no sleep at all.
        ([0.0], [], None, [], [60.0], 1000.0, 0),
        # A slot ahead: one sleep, exactly until it; the call goes out on it.
        ([0.3], [], None, [0.3], [60.0], 1000.3, 0),
        # The lease's send window bounds how far ahead a slot may be booked.
        ([0.3], [], 5.0, [0.3], [5.0], 1000.3, 0),
        # Woke within max_lag (0.05) of the slot: sent.
        ([0.3], [0.04], None, [0.3], [60.0], 1000.34, 0),
        # Woke 0.2 s late: the slot is given up, a new one booked (for the time left).
        ([0.3, 0.1], [0.2], None, [0.3, 0.1], [60.0, 59.5], 1000.6, 1),
        # Late twice: a third slot.
        ([0.1, 0.1, 0.0], [0.5, 0.5], None, [0.1, 0.1], [60.0, 59.4, 58.8], 1001.2, 2),
    ],
)
def test_waits_for_its_booked_slot(
    answers: list[float | None],
    oversleep: list[float],
    send_within: float | None,
    sleeps: list[float],
    asked: list[float],
    sent_at: float,
    missed: int,
) -> None:
    clock = Clock(oversleep)
    limiter = BookingLimiter(answers)
    gateway, inner = _gateway(limiter, clock)
    request = (
        PAYMENT
        if send_within is None
        else PAYMENT.__class__(**{**PAYMENT.__dict__, "send_within": send_within})
    )
    assert gateway.charge(request) is inner.reply
    assert clock.sleeps == pytest.approx(sleeps)
    assert limiter.asked == pytest.approx(asked)
    assert inner.calls == [("charge", pytest.approx(sent_at))]
    assert gateway.missed_slots == missed


def test_never_sends_when_it_woke_past_its_deadline() -> None:
    clock = Clock(oversleep=[0.2])
    limiter = BookingLimiter([0.9])
    gateway, inner = _gateway(limiter, clock, max_wait=1.0)
    result = gateway.order_status(order_number="INV-1-1")
    assert result == ConnectionFailed("rate limit: no slot within 1s", reason=RATE_LIMITED)
    assert result.request_sent is False
    assert inner.calls == []


def test_no_slot_in_time_polls_until_the_deadline_then_gives_up() -> None:
    """``None``: Redis is down (fail closed) or every slot within the deadline is taken."""
    clock = Clock()
    limiter = BookingLimiter([])
    gateway, inner = _gateway(limiter, clock, max_wait=1.0, poll_interval=0.1)
    result = gateway.charge(PAYMENT)
    assert isinstance(result, ConnectionFailed) and result.reason == RATE_LIMITED
    assert inner.calls == []
    assert clock.now == pytest.approx(1001.0)  # never past the deadline
    assert len(limiter.asked) == 11  # asked again after each 0.1 s pause
    assert limiter.asked == sorted(limiter.asked, reverse=True)  # for what is left


def test_redis_back_within_the_deadline_books_and_sends() -> None:
    clock = Clock()
    limiter = BookingLimiter([None, None, 0.2])
    gateway, inner = _gateway(limiter, clock, max_wait=1.0, poll_interval=0.1)
    assert gateway.charge(PAYMENT) is inner.reply
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.2])
    assert inner.calls == [("charge", pytest.approx(1000.4))]


def test_a_spent_send_window_books_nothing() -> None:
    clock = Clock()
    limiter = BookingLimiter([0.0])
    gateway, inner = _gateway(limiter, clock)
    spent = PAYMENT.__class__(**{**PAYMENT.__dict__, "send_within": 0.0})
    assert isinstance(gateway.charge(spent), ConnectionFailed)
    assert limiter.asked == []
    assert inner.calls == []


@pytest.mark.parametrize(
    ("limit", "spread", "asks", "expected"),
    [
        # limit 2 per 1.1 s: two now, the third when the first leaves the window.
        (2, 0.0, [5.0, 5.0, 5.0], [0.0, 0.0, 1.1]),
        # Not far enough ahead: nothing booked, and the next ask still finds that slot.
        (2, 0.0, [5.0, 5.0, 0.5, 5.0], [0.0, 0.0, None, 1.1]),
        # spread 1: slots paced 1/limit apart.
        (4, 1.0, [5.0, 5.0, 5.0], [0.0, 0.25, 0.5]),
        # max_ahead 0 is acquire(): only a slot now.
        (4, 1.0, [0.0, 0.0], [0.0, None]),
    ],
)
def test_local_limiter_books_in_order(
    limit: int, spread: float, asks: list[float], expected: list[float | None]
) -> None:
    clock = Clock()
    limiter = LocalCallLimiter(limit, spread=spread, clock=clock)
    got = [limiter.reserve(ask) for ask in asks]
    assert got == [None if e is None else pytest.approx(e, abs=2e-6) for e in expected]


def test_local_limiter_grants_nothing_ahead_of_a_booked_slot() -> None:
    clock = Clock()
    limiter = LocalCallLimiter(1, spread=0, clock=clock)
    assert limiter.reserve(0.0) == 0.0
    assert limiter.reserve(2.0) == pytest.approx(1.1, abs=2e-6)
    clock.now += 1.2  # the first slot left the window, but the booked one is still ahead
    assert not limiter.acquire()


class _Script:
    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.args: list[Any] = []

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        self.args.append(args)
        return self.reply


class _Redis:
    def __init__(self, reply: Any) -> None:
        self.script = _Script(reply)

    def register_script(self, text: str) -> _Script:
        return self.script


def test_redis_limiter_books_with_one_script_call() -> None:
    fake = _Redis([1, 1_700_000_000_000_000, 1_700_000_000_250_000])
    limiter = RedisCallLimiter(fake, "k", 10, spread=0.5)  # type: ignore[arg-type]
    assert limiter.reserve(1.5) == pytest.approx(0.25)
    assert limiter.try_reserve(1.5) == (1_700_000_000.0, 1_700_000_000.25)
    limit, window_us, _token, spacing_us, ahead_us = fake.script.args[0]
    assert (limit, window_us, spacing_us, ahead_us) == (10, 1_100_000, 50_000, 1_500_000)


def test_redis_limiter_books_nothing_when_the_script_says_no() -> None:
    fake = _Redis([0, 1_700_000_000_000_000, 1_700_000_002_000_000])
    limiter = RedisCallLimiter(fake, "k", 10)  # type: ignore[arg-type]
    assert limiter.reserve(1.0) is None
    assert not limiter.acquire()
    assert fake.script.args[-1][4] == 0  # acquire books nothing ahead
