"""The gateway rate limit without Redis: LocalCallLimiter on a fake clock, the waiting
wrapper with an injected sleep/clock, RedisCallLimiter's fail-closed path."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import ConfigurationError
from billing.gateway.classify import Category, classify_payment
from billing.gateway.port import ChargeRequest, RefundRequest, ReverseRequest
from billing.gateway.rate_limit import (
    DEFAULT_KEY,
    CallLimiter,
    LocalCallLimiter,
    RateLimitedGateway,
    RedisCallLimiter,
    build_limiter,
)
from billing.gateway.results import RATE_LIMITED, ConnectionFailed, GatewayResult, JsonReply
from tests.support.fakes import PAYMENT
from tests.support.rate_window import max_in_closed_window


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class ScriptedLimiter:
    def __init__(self, answers: list[bool], default: bool = False) -> None:
        self.answers = list(answers)
        self.default = default
        self.calls = 0
        self.closed = False

    def acquire(self) -> bool:
        self.calls += 1
        return self.answers.pop(0) if self.answers else self.default

    def close(self) -> None:
        self.closed = True


class RecordingGateway:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.reply = JsonReply(200, {"errorCode": "0"})
        self.closed = False

    def charge(self, request: ChargeRequest) -> GatewayResult:
        self.calls.append(("charge", request))
        return self.reply

    def order_status(self, **kwargs: Any) -> GatewayResult:
        self.calls.append(("order_status", kwargs))
        return self.reply

    def close(self) -> None:
        self.closed = True


# -- LocalCallLimiter ---------------------------------------------------------------------------


def test_local_limiter_grants_exactly_the_limit_per_window() -> None:
    clock = FakeClock(0.0)
    limiter = LocalCallLimiter(5, margin=0, spread=0, clock=clock)
    assert [limiter.acquire() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now = 0.5
    assert not limiter.acquire()
    clock.now = 1.0  # the window is closed: the grants at 0.0 still count at exactly 1.0
    assert not limiter.acquire()
    clock.now = 1.000001
    assert [limiter.acquire() for _ in range(6)] == [True] * 5 + [False]


def test_local_limiter_has_no_burst_at_a_second_boundary() -> None:
    """A fixed 1-second bucket would allow 5 at 0.9 and 5 more at 1.0 (10 in 0.1 s)."""
    clock = FakeClock(0.9)
    limiter = LocalCallLimiter(5, margin=0, spread=0, clock=clock)
    assert sum(limiter.acquire() for _ in range(5)) == 5
    for now in (1.0, 1.1, 1.5, 1.9):
        clock.now = now
        assert not limiter.acquire(), now
    clock.now = 1.9000001
    assert sum(limiter.acquire() for _ in range(10)) == 5


def test_local_limiter_slots_free_one_by_one() -> None:
    clock = FakeClock(0.0)
    limiter = LocalCallLimiter(3, margin=0, spread=0, clock=clock)
    granted = []
    for step in range(40):  # one request every 0.1 s for 4 s
        clock.now = step * 0.1
        if limiter.acquire():
            granted.append(clock.now)
    assert max_in_closed_window(granted) <= 3
    assert len(granted) >= 3 * 4 * 0.9


def test_local_limiter_margin_widens_the_window() -> None:
    """The default 0.1 s margin: the limit counts over 1.1 s, so a grant that reaches the
    gateway up to 0.1 s late still leaves at most the limit in any 1 s at the gateway."""
    clock = FakeClock(0.0)
    limiter = LocalCallLimiter(5, spread=0, clock=clock)
    assert limiter.window == pytest.approx(1.1)
    assert sum(limiter.acquire() for _ in range(10)) == 5
    clock.now = 1.05
    assert not limiter.acquire()
    clock.now = 1.1
    assert not limiter.acquire()
    clock.now = 1.1001
    assert sum(limiter.acquire() for _ in range(10)) == 5


def test_local_limiter_spreads_a_quota_over_time() -> None:
    """spread=0.5 at 10/s: grants at least 0.05 s apart, so 10 take 0.45 s, not 0."""
    clock = FakeClock(0.0)
    limiter = LocalCallLimiter(10, margin=0, spread=0.5, clock=clock)
    assert limiter.min_interval == pytest.approx(0.05)
    granted = []
    for step in range(3000):  # a request every millisecond for 3 s
        clock.now = step / 1000
        if limiter.acquire():
            granted.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert min(gaps) >= 0.05 - 1e-9
    assert 0.45 <= granted[9] <= 0.46  # the first 10 are spread over ~0.45 s
    assert max_in_closed_window(granted) <= 10
    assert max_in_closed_window(granted, 0.099) <= 2
    assert len(granted) >= 10 * 3 * 0.9  # the steady rate is still the limit


def test_full_spread_paces_evenly() -> None:
    clock = FakeClock(0.0)
    limiter = LocalCallLimiter(4, margin=0, spread=1.0, clock=clock)
    answers = []
    for step in range(10):
        clock.now = step * 0.125
        answers.append(limiter.acquire())
    # One every 0.25 s; at 1.0 the closed window [0, 1] already holds 4, at 1.125 not.
    assert answers == [True, False, True, False, True, False, True, False, False, True]


@given(
    st.lists(st.integers(min_value=0, max_value=5_000_000), min_size=1, max_size=300),
    st.integers(min_value=1, max_value=20),
    st.sampled_from([0.0, 0.5, 1.0]),
    st.sampled_from([0.0, 0.1]),
)
def test_local_limiter_never_exceeds_the_limit_in_any_window(
    micros: list[int], limit: int, spread: float, margin: float
) -> None:
    clock = FakeClock(0.0)
    limiter = LocalCallLimiter(limit, margin=margin, spread=spread, clock=clock)
    granted = []
    for t in sorted(micros):
        clock.now = t / 1_000_000
        if limiter.acquire():
            granted.append(clock.now)
        else:
            # Denied only when the window ending now is full or the last grant is too near.
            recent = [g for g in granted if g >= clock.now - 1.0 - margin]
            too_soon = bool(granted) and clock.now - granted[-1] < spread / limit
            assert len(recent) >= limit or too_soon
    assert max_in_closed_window(granted, 1.0 + margin) <= limit
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert all(gap >= spread / limit - 1e-9 for gap in gaps)


def test_local_limiter_is_thread_safe() -> None:
    clock = FakeClock(0.0)  # time stands still: exactly the limit may be granted
    limiter = LocalCallLimiter(100, spread=0, clock=clock)
    granted = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(limiter.acquire() for _ in range(200))
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_limiters_reject_a_bad_limit(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        LocalCallLimiter(bad)


@pytest.mark.parametrize(
    ("option", "bad"), [("spread", -0.1), ("spread", 1.5), ("margin", -0.1), ("margin", 11)]
)
def test_limiters_reject_a_bad_spread_or_margin(option: str, bad: float) -> None:
    with pytest.raises(ConfigurationError):
        LocalCallLimiter(1, **{option: bad})
    with pytest.raises(ConfigurationError):
        RedisCallLimiter(FakeRedis([]), "k", 1, **{option: bad})  # type: ignore[arg-type]


def test_limiters_satisfy_the_protocol() -> None:
    assert isinstance(LocalCallLimiter(1), CallLimiter)


# -- RateLimitedGateway -------------------------------------------------------------------------


def test_passes_calls_through_unchanged_when_a_slot_is_free() -> None:
    inner = RecordingGateway()
    clock = FakeClock()
    gateway = RateLimitedGateway(
        inner, ScriptedLimiter([], default=True), sleep=clock.sleep, clock=clock
    )
    assert gateway.charge(PAYMENT) is inner.reply
    assert gateway.order_status(order_id="abc") is inner.reply
    assert gateway.order_status(order_number="INV-1-1") is inner.reply
    assert inner.calls == [
        ("charge", PAYMENT),
        ("order_status", {"order_number": None, "order_id": "abc"}),
        ("order_status", {"order_number": "INV-1-1", "order_id": None}),
    ]
    assert clock.now == 1000.0  # no sleep at all


def test_waits_for_a_slot_then_calls() -> None:
    inner = RecordingGateway()
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    limiter = ScriptedLimiter([False, False, False, True])
    gateway = RateLimitedGateway(
        inner, limiter, sleep=sleep, clock=clock, poll_interval=0.05, jitter=lambda: 0.5
    )
    assert gateway.charge(PAYMENT) is inner.reply
    assert limiter.calls == 4
    assert sleeps == [0.05, 0.05, 0.05]
    assert inner.calls == [("charge", PAYMENT)]


def test_sleeps_are_jittered_within_bounds() -> None:
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    jitters = iter([0.0, 0.999, 0.25])
    gateway = RateLimitedGateway(
        RecordingGateway(),
        ScriptedLimiter([False, False, False, True]),
        sleep=sleep,
        clock=clock,
        poll_interval=0.1,
        jitter=lambda: next(jitters),
    )
    gateway.order_status(order_id="x")
    assert sleeps == pytest.approx([0.05, 0.1499, 0.075])


def test_gives_up_after_max_wait_with_a_not_sent_result() -> None:
    inner = RecordingGateway()
    clock = FakeClock()
    limiter = ScriptedLimiter([], default=False)
    gateway = RateLimitedGateway(inner, limiter, sleep=clock.sleep, clock=clock)
    result = gateway.charge(PAYMENT)
    assert result == ConnectionFailed("rate limit: no slot within 60s", reason=RATE_LIMITED)
    assert result.request_sent is False
    assert inner.calls == []
    assert clock.now == pytest.approx(1060.0)  # never sleeps past the deadline
    assert limiter.calls > 60 / 0.075  # polled all along, at 0.025..0.075 s intervals
    # The classifier reads it as transient: nothing charged, retry later.
    assert classify_payment(result).category is Category.TRANSIENT


def test_max_wait_is_configurable_and_applies_to_status_queries() -> None:
    inner = RecordingGateway()
    clock = FakeClock()
    gateway = RateLimitedGateway(
        inner, ScriptedLimiter([], default=False), max_wait=2.5, sleep=clock.sleep, clock=clock
    )
    assert gateway.order_status(order_number="INV-1-1") == ConnectionFailed(
        "rate limit: no slot within 2.5s", reason=RATE_LIMITED
    )
    assert clock.now == pytest.approx(1002.5)
    assert inner.calls == []


def test_a_slot_granted_at_the_last_moment_is_used() -> None:
    inner = RecordingGateway()
    clock = FakeClock()
    answers = [False] * 10 + [True]
    gateway = RateLimitedGateway(
        inner,
        ScriptedLimiter(answers),
        max_wait=0.5,
        poll_interval=0.05,
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda: 0.5,
    )
    assert gateway.charge(PAYMENT) is inner.reply


def test_zero_max_wait_tries_once() -> None:
    limiter = ScriptedLimiter([], default=False)
    gateway = RateLimitedGateway(RecordingGateway(), limiter, max_wait=0)
    assert isinstance(gateway.order_status(order_id="x"), ConnectionFailed)
    assert limiter.calls == 1


def test_close_closes_the_inner_gateway_and_the_limiter() -> None:
    inner = RecordingGateway()
    limiter = ScriptedLimiter([])
    RateLimitedGateway(inner, limiter).close()
    assert inner.closed
    assert limiter.closed


def test_close_tolerates_parts_without_close() -> None:
    class Bare:
        def charge(self, request: ChargeRequest) -> GatewayResult:
            raise AssertionError

        def order_status(self, **kwargs: Any) -> GatewayResult:
            raise AssertionError

    RateLimitedGateway(Bare(), LocalCallLimiter(1)).close()


def test_waits_with_the_real_clock_and_local_limiter() -> None:
    inner = RecordingGateway()
    gateway = RateLimitedGateway(
        inner, LocalCallLimiter(2, spread=0), poll_interval=0.01, max_wait=0.2
    )
    results = [gateway.order_status(order_id=str(i)) for i in range(3)]
    assert results[:2] == [inner.reply, inner.reply]
    assert isinstance(results[2], ConnectionFailed)


# -- RedisCallLimiter failing closed, without a Redis ---------------------------------------------


class FlakyScript:
    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.calls = 0

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        self.calls += 1
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


class FakeRedis:
    def __init__(self, replies: list[Any]) -> None:
        self.script = FlakyScript(replies)
        self.closed = False

    def register_script(self, text: str) -> FlakyScript:
        assert "ZREMRANGEBYSCORE" in text
        return self.script

    def close(self) -> None:
        self.closed = True


def test_redis_limiter_fails_closed_and_warns_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    down = redis.ConnectionError("Connection refused")
    fake = FakeRedis(
        [
            [1, 1_700_000_000_000_000, 1_700_000_000_000_000],
            down,
            down,
            redis.TimeoutError("Timeout reading from socket"),
            [1, 1_700_000_003_000_000, 1_700_000_003_000_000],
            down,
        ]
    )
    limiter = RedisCallLimiter(fake, "k", 10, clock=clock, outage_cooldown=1.0)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="billing.gateway.rate_limit")

    assert limiter.try_acquire() == 1_700_000_000.0
    assert not limiter.acquire()  # Redis down: deny
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "Redis unavailable" in caplog.records[0].getMessage()
    # Within the cooldown Redis is not even asked.
    for _ in range(50):
        assert not limiter.acquire()
    assert fake.script.calls == 2
    clock.now += 1.0
    assert not limiter.acquire()  # one probe, still down, no second warning
    clock.now += 1.0
    assert not limiter.acquire()  # TimeoutError too
    assert fake.script.calls == 4
    assert len(caplog.records) == 1
    clock.now += 1.0
    assert limiter.acquire()  # back
    assert len(caplog.records) == 2
    assert "answers again" in caplog.records[1].getMessage()
    assert not limiter.acquire()  # a new outage, a new warning
    assert len(caplog.records) == 3


def test_redis_limiter_denies_on_a_garbled_reply() -> None:
    old_reply = [1, 1_700_000_000_000_000]  # the pre-booking script's answer
    limiter = RedisCallLimiter(
        FakeRedis([b"nonsense", old_reply]),  # type: ignore[arg-type]
        "k",
        10,
        outage_cooldown=0,
    )
    assert not limiter.acquire()
    assert limiter.reserve(1.0) is None


def test_redis_limiter_denies_when_the_script_denies() -> None:
    denied = [0, 1_700_000_000_000_000, 1_700_000_000_500_000]
    limiter = RedisCallLimiter(FakeRedis([denied]), "k", 10)  # type: ignore[arg-type]
    assert limiter.try_acquire() is None


def test_redis_limiter_closes_only_a_client_it_owns() -> None:
    shared = FakeRedis([])
    RedisCallLimiter(shared, "k", 1).close()  # type: ignore[arg-type]
    assert not shared.closed
    owned = FakeRedis([])
    RedisCallLimiter(owned, "k", 1, owns_client=True).close()  # type: ignore[arg-type]
    assert owned.closed


def test_redis_limiter_on_a_dead_port_denies_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisCallLimiter.from_url("redis://127.0.0.1:1/0", "k", 10)
    try:
        caplog.set_level(logging.WARNING, logger="billing.gateway.rate_limit")
        gateway = RateLimitedGateway(RecordingGateway(), limiter, max_wait=0.3, poll_interval=0.02)
        result = gateway.charge(PAYMENT)
        assert result == ConnectionFailed("rate limit: no slot within 0.3s", reason=RATE_LIMITED)
        outage = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(outage) == 1
    finally:
        limiter.close()


# -- build_limiter ------------------------------------------------------------------------------


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for limiter in made:
        close = getattr(limiter, "close", None)
        if close is not None:
            close()


@pytest.mark.parametrize("limit", [None, 0])
def test_build_limiter_without_a_limit_is_none(limit: int | None) -> None:
    assert build_limiter("redis://127.0.0.1:6379/0", limit) is None
    assert build_limiter(None, limit) is None


def test_build_limiter_without_redis_is_local(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="billing.gateway.rate_limit")
    limiter = build_limiter(None, 7)
    assert isinstance(limiter, LocalCallLimiter)
    assert limiter.calls_per_second == 7
    assert "per process only" in caplog.text


def test_build_limiter_with_redis_is_global_and_lazy(closing: list[Any]) -> None:
    limiter = build_limiter("redis://127.0.0.1:1/0", 25)  # nothing listens: must not connect
    closing.append(limiter)
    assert isinstance(limiter, RedisCallLimiter)
    assert limiter.key == DEFAULT_KEY
    assert limiter.calls_per_second == 25


def test_build_limiter_rejects_a_negative_limit() -> None:
    with pytest.raises(ConfigurationError):
        build_limiter(None, -5)


def test_refunds_and_reversals_pass_through_the_limit_to_the_wrapped_gateway() -> None:
    from billing.gateway.rate_limit import LocalCallLimiter, RateLimitedGateway
    from billing.gateway.results import JsonReply

    class Refunding:
        def __init__(self) -> None:
            self.calls: list[tuple[str, ...]] = []

        def refund(self, request: RefundRequest) -> JsonReply:
            r = request
            self.calls.append(("refund", r.order_id, str(r.amount), r.external_refund_id))
            return JsonReply(200, {"errorCode": "0"})

        def reverse(self, request: ReverseRequest) -> JsonReply:
            self.calls.append(("reverse", request.order_id))
            return JsonReply(200, {"errorCode": "0"})

    inner = Refunding()
    gateway = RateLimitedGateway(inner, LocalCallLimiter(100))  # type: ignore[arg-type]
    assert gateway.refund(RefundRequest("o-1", 500, "r-1")) == JsonReply(200, {"errorCode": "0"})
    assert gateway.reverse(ReverseRequest("o-1")) == JsonReply(200, {"errorCode": "0"})
    assert inner.calls == [("refund", "o-1", "500", "r-1"), ("reverse", "o-1")]
