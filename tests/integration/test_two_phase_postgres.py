"""Two-phase captures and stuck-order declines on real PostgreSQL, through the production
graph (bootstrap) with a fake gateway that keeps orders like the bank does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from billing.domain.policy_file import parse_policy
from billing.domain.subscription import NewSubscription
from billing.errors import ConflictError, ValidationError
from billing.gateway.port import DeclineRequest
from billing.gateway.results import GatewayResult
from billing.storage.tables import Event, GatewayCircuit
from tests.support.fakes import FakeGateway
from tests.support.world import ServiceWorld

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"
#: The fast policy, declining an order still pending 3 seconds after the charge.
STUCK_POLICY = FAST_POLICY.read_text().replace('decline_after = ""', 'decline_after = "3s"')


@dataclass
class World(ServiceWorld):
    def subscribe(self, binding: str) -> int:
        new = NewSubscription(
            customer_id="cust-1",
            binding_id=binding,
            amount=49900,
            schedule="0 3 1 * *",
            start_at=self.clock(),
        )
        created = self.app.actions.subscriptions.create(new, actor="crm", reason="signup")
        return int(created.body["id"])

    def events(self, sub_id: int) -> list[str]:
        with self.db.transaction() as s:
            rows = s.scalars(
                select(Event).where(Event.subscription_id == sub_id).order_by(Event.id)
            )
            return [e.kind for e in rows]


def _world(pg_url: str, **settings: Any) -> Iterator[World]:
    gateway = FakeGateway()
    gateway.two_phase = bool(settings.get("gateway_two_phase"))
    w = World.build(
        pg_url,
        policy=parse_policy(STUCK_POLICY),
        gateway=gateway,
        stale_sending_after=30,
        circuit_outage_threshold=3,
        **settings,
    )
    yield w
    w.db.dispose()


@pytest.fixture
def two_phase(pg_url: str) -> Iterator[World]:
    yield from _world(pg_url, gateway_two_phase=True)


@pytest.fixture
def two_phase_operator(pg_url: str) -> Iterator[World]:
    yield from _world(pg_url, gateway_two_phase=True, gateway_capture_failed="operator")


@pytest.fixture
def one_phase(pg_url: str) -> Iterator[World]:
    yield from _world(pg_url)


def test_a_held_charge_is_captured_and_paid_once_deposited(two_phase: World) -> None:
    sub_id = two_phase.subscribe("approve-1")
    two_phase.tick()
    [invoice] = two_phase.invoices(sub_id)
    [attempt] = two_phase.attempts(sub_id)
    assert invoice.status == "paid" and attempt.state == "paid"
    assert two_phase.gateway.deposit_calls == [attempt.gateway_order_id]
    assert two_phase.gateway.deposited() == [attempt.order_number]
    assert attempt.capture_result == "accepted" and attempt.capture_sent_at is not None
    assert {"capture_sent", "capture_answered", "invoice_paid"} <= set(two_phase.events(sub_id))


def test_a_capture_that_times_out_is_settled_by_status_and_never_sent_again(
    two_phase: World,
) -> None:
    two_phase.gateway.deposit_mode = "timeout"  # captured; the answer is lost
    sub_id = two_phase.subscribe("approve-1")
    two_phase.tick()
    two_phase.tick(60)
    [attempt] = two_phase.attempts(sub_id)
    assert attempt.state == "paid" and two_phase.invoices(sub_id)[0].status == "paid"
    assert len(two_phase.gateway.deposit_calls) == 1


def test_a_lost_capture_is_never_resent_blindly_and_ends_with_an_operator_who_captures(
    two_phase: World,
) -> None:
    two_phase.gateway.deposit_mode = "lost"  # no answer, nothing captured
    sub_id = two_phase.subscribe("approve-1")
    two_phase.tick()
    for _ in range(30):  # status checks until the fast policy gives up (1 minute)
        two_phase.tick(5)
    [attempt] = two_phase.attempts(sub_id)
    assert attempt.state == "needs_operator"
    assert len(two_phase.gateway.deposit_calls) == 1
    assert two_phase.invoices(sub_id)[0].status == "open"

    two_phase.gateway.deposit_mode = "ok"
    done = two_phase.app.actions.held_orders.capture(
        attempt.id, actor="alice", reason="customer confirmed"
    )
    assert done["result"] == "paid" and done["state"] == "paid"
    assert two_phase.invoices(sub_id)[0].status == "paid"
    assert len(two_phase.gateway.deposit_calls) == 2
    with two_phase.db.transaction() as s:
        audited = s.scalars(select(Event).where(Event.actor == "alice")).all()
        assert {"capture_requested", "operator_reason", "attempt_resolved"} <= {
            e.kind for e in audited
        }
    with pytest.raises(ConflictError):
        two_phase.app.actions.held_orders.capture(attempt.id, actor="alice", reason="again")


def test_a_refused_capture_is_released_and_the_invoice_retried_with_a_new_order(
    two_phase: World,
) -> None:
    two_phase.gateway.deposit_mode = "refuse"
    sub_id = two_phase.subscribe("approve-1")
    two_phase.tick()
    [first] = two_phase.attempts(sub_id)
    assert first.state == "failed" and first.reason == "capture_refused"
    assert two_phase.gateway.reverse_calls == [first.gateway_order_id]
    assert two_phase.gateway.orders[first.order_number]["orderStatus"] == 3  # released
    # A refused capture says nothing about the gateway's health: no outage counted, no pause.
    assert two_phase.app.charger.settlement.circuit.failures() == 0
    with two_phase.db.transaction() as s:
        assert set(s.scalars(select(GatewayCircuit.state))) <= {"closed"}

    two_phase.gateway.deposit_mode = "ok"
    two_phase.tick(5)
    _, second = two_phase.attempts(sub_id)
    assert second.order_number != first.order_number
    assert second.state == "paid" and two_phase.invoices(sub_id)[0].status == "paid"
    assert two_phase.gateway.deposited() == [second.order_number]


def test_a_refused_capture_goes_to_an_operator_who_releases_the_hold(
    two_phase_operator: World,
) -> None:
    world = two_phase_operator
    world.gateway.deposit_mode = "refuse"
    sub_id = world.subscribe("approve-1")
    world.tick()
    [attempt] = world.attempts(sub_id)
    assert attempt.state == "needs_operator" and attempt.reason == "capture_refused"
    assert world.gateway.reverse_calls == []  # the hold stays until someone decides
    assert world.invoices(sub_id)[0].next_attempt_at is None

    with pytest.raises(ValidationError):  # a reason is required
        world.app.actions.held_orders.release(attempt.id, actor="bob", reason=" ")
    done = world.app.actions.held_orders.release(attempt.id, actor="bob", reason="not shipped")
    assert done["result"] == "released" and done["state"] == "failed"
    assert world.gateway.orders[attempt.order_number]["orderStatus"] == 3
    invoice = world.invoices(sub_id)[0]
    assert invoice.status == "open" and invoice.next_attempt_at is not None
    assert world.gateway.deposited() == []


def test_a_one_phase_merchant_leaves_a_held_order_to_its_status_checks(one_phase: World) -> None:
    one_phase.gateway.two_phase = True  # the account is two-phase, the setting says no
    sub_id = one_phase.subscribe("approve-1")
    one_phase.tick()
    [attempt] = one_phase.attempts(sub_id)
    assert attempt.state == "unknown" and attempt.reason == "held"
    assert one_phase.gateway.deposit_calls == []
    done = one_phase.app.actions.held_orders.capture(attempt.id, actor="alice", reason="ok")
    assert done["result"] == "paid"


def test_a_stuck_order_is_declined_then_retried_with_a_new_order_number(one_phase: World) -> None:
    sub_id = one_phase.subscribe("stuck-1")
    one_phase.tick()
    [attempt] = one_phase.attempts(sub_id)
    assert attempt.state == "unknown" and one_phase.gateway.decline_calls == []
    for _ in range(4):  # the fast policy declines an order still pending after 3 seconds
        one_phase.tick(2)
    first, second = one_phase.attempts(sub_id)
    assert first.state == "failed" and first.reason == "stuck_order_declined"
    assert one_phase.gateway.orders[first.order_number]["orderStatus"] == 6
    assert len(one_phase.gateway.decline_calls) == 1
    assert second.order_number != first.order_number and second.state == "paid"
    assert one_phase.gateway.deposited() == [second.order_number]
    assert one_phase.sub(sub_id).status == "active"  # not a dunning step
    assert {"decline_sent", "decline_answered"} <= set(one_phase.events(sub_id))


class WorkerKilled(BaseException):
    """The worker process dies (SIGKILL): nothing after this point runs."""


def test_a_stuck_order_declined_by_a_worker_that_died_is_still_retried_not_held(
    one_phase: World,
) -> None:
    """Found by the chaos run: the worker that sent decline.do was killed before it read
    the status; the next check saw DECLINED with actionCode 4005 ("declined by merchant")
    and held the subscription for an operator, as for a bad request of ours."""
    gateway = one_phase.gateway
    real_decline = gateway.decline

    def decline_then_die(request: DeclineRequest) -> GatewayResult:
        real_decline(request)
        raise WorkerKilled

    gateway.decline = decline_then_die  # type: ignore[method-assign]
    sub_id = one_phase.subscribe("stuck-1")
    with pytest.raises(WorkerKilled):
        for _ in range(5):
            one_phase.tick(2)
    gateway.decline = real_decline  # type: ignore[method-assign]
    one_phase.dispatcher.reconciles.clear()  # its message died with it
    one_phase.tick(31)  # the check's lease ran out: asked again
    for _ in range(3):
        one_phase.tick(2)
    first, second = one_phase.attempts(sub_id)
    assert first.state == "failed" and first.reason == "stuck_order_declined"
    assert second.state == "paid" and one_phase.sub(sub_id).status == "active"
    assert gateway.deposited() == [second.order_number]


def test_a_decline_refused_because_the_order_was_paid_meanwhile_records_it_paid(
    one_phase: World,
) -> None:
    gateway = one_phase.gateway
    real_decline = gateway.decline

    def paid_first(request: DeclineRequest) -> GatewayResult:
        gateway.orders[request.order_number or ""]["orderStatus"] = 2  # the bank finished it
        return real_decline(request)

    gateway.decline = paid_first  # type: ignore[method-assign]
    sub_id = one_phase.subscribe("pending-1")
    for _ in range(4):
        one_phase.tick(2)
    [attempt] = one_phase.attempts(sub_id)
    assert attempt.state == "paid" and one_phase.invoices(sub_id)[0].status == "paid"
    assert len(gateway.payment_calls) == 1
