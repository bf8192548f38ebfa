"""The slot check right before a request is written (billing.gateway.send_gate): nothing is
sent on an expired slot, and the rate-limited gateway then takes a new slot."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest
from billing.gateway.rate_limit import RateLimitedGateway
from billing.gateway.results import ConnectionFailed, GatewayResult, JsonReply
from billing.gateway.send_gate import GatedTransport, SlotMissed, check_slot, sending_on_slot
from tests.support.fakes import PAYMENT


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"errorCode": "0", "orderId": "o-1"})


@pytest.mark.parametrize(
    ("gate", "raises"),
    [(None, False), (lambda: False, False), (lambda: True, True)],
)
def test_check_slot(gate: Any, raises: bool) -> None:
    if gate is None:
        check_slot()  # no gate open: never raises
        return
    with sending_on_slot(gate):
        if raises:
            with pytest.raises(SlotMissed):
                check_slot()
        else:
            check_slot()
    check_slot()  # the gate is closed again


def test_the_gated_transport_writes_nothing_on_an_expired_slot() -> None:
    written: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        written.append(request)
        return _answer(request)

    transport = GatedTransport(httpx.MockTransport(record))
    with httpx.Client(transport=transport) as client:
        with sending_on_slot(lambda: True), pytest.raises(SlotMissed):
            client.post("http://gateway.test/x", json={})
        assert written == []
        with sending_on_slot(lambda: False):
            assert client.post("http://gateway.test/x", json={}).status_code == 200
        assert len(written) == 1


def _client(handler: Any) -> GatewayClient:
    config = GatewayConfig(
        base_url="http://gateway.test/payment/rest",
        username="u",
        password=SecretStr("p"),
    )
    return GatewayClient(config, transport=httpx.MockTransport(handler))


def test_the_gateway_client_checks_the_slot_before_writing() -> None:
    written: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        written.append(request)
        return _answer(request)

    with _client(record) as client:
        with sending_on_slot(lambda: True), pytest.raises(SlotMissed):
            client.charge(PAYMENT)
        assert written == []


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _Limiter:
    """Every slot is free now; counts the slots taken."""

    def __init__(self) -> None:
        self.booked = 0

    def acquire(self) -> bool:
        raise AssertionError("never polled")

    def reserve(self, max_ahead: float) -> float | None:
        self.booked += 1
        return 0.0


class _SlowClientGateway:
    """Stands for the HTTP client: spends ``build`` seconds of the clock before the write,
    where the real transport checks the gate."""

    def __init__(self, clock: _Clock, builds: list[float]) -> None:
        self.clock, self.builds = clock, builds
        self.written: list[float] = []

    def charge(self, request: ChargeRequest) -> GatewayResult:
        self.clock.now += self.builds.pop(0) if self.builds else 0.0
        check_slot()
        self.written.append(self.clock.now)
        return JsonReply(200, {"errorCode": "0"})

    def order_status(self, **kwargs: Any) -> GatewayResult:
        raise AssertionError


@pytest.mark.parametrize(
    ("builds", "booked", "missed", "written"),
    [
        ([0.01], 1, 0, [100.01]),  # within max_lag (0.05): written on the first slot
        ([0.2], 2, 1, [100.2]),  # 0.2 s in the client: not written, a second slot
        ([0.2, 0.3], 3, 2, [100.5]),
    ],
)
def test_an_expired_slot_is_given_up_and_a_new_one_taken(
    builds: list[float], booked: int, missed: int, written: list[float]
) -> None:
    clock = _Clock()
    limiter = _Limiter()
    inner = _SlowClientGateway(clock, builds)
    gateway = RateLimitedGateway(inner, limiter, sleep=clock.sleep, clock=clock)
    assert isinstance(gateway.charge(PAYMENT), JsonReply)
    assert (limiter.booked, gateway.missed_slots) == (booked, missed)
    assert inner.written == pytest.approx(written)  # one write only, on a fresh slot


def test_no_write_after_the_send_window_closes() -> None:
    """The lease's send window ends while the client builds the request: nothing is
    written and the charge is "not sent" (retried later with the same orderNumber)."""
    clock = _Clock()
    inner = _SlowClientGateway(clock, [0.04])
    gateway = RateLimitedGateway(inner, _Limiter(), sleep=clock.sleep, clock=clock)
    request = ChargeRequest(**{**PAYMENT.__dict__, "send_within": 0.03})
    result = gateway.charge(request)
    assert isinstance(result, ConnectionFailed) and result.request_sent is False
    assert inner.written == []
