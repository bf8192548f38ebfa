"""An attempt waiting for an operator (``needs_operator``) is not a dead end: it stays
re-checkable (slow poll, callbacks, ``billing reconcile``), blocks retries of its invoice,
and is resolved by an audited operator action that asks the gateway first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update

from billing.errors import ConflictError
from billing.services.pipeline.reconciliation import reconcile_now
from billing.storage.tables import ChargeAttempt, Event, Invoice, Subscription
from tests.support.world import ServiceWorld, sqlite_url


@dataclass
class World(ServiceWorld):
    def set_order(self, order_number: str, status: int | None) -> None:
        """What the bank now says about the order: 2 deposited, 6 declined, None unknown."""
        if status is None:
            del self.gateway.orders[order_number]
        else:
            self.gateway.orders[order_number]["orderStatus"] = status

    def events(self, kind: str) -> list[Event]:
        with self.db.transaction() as s:
            return list(s.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with World.fast(sqlite_url(tmp_path)) as w:
        yield w


def test_a_late_deposit_is_found_by_the_slow_poll_and_the_invoice_is_paid(world: World) -> None:
    sub_id, attempt = world.waiting_for_operator()
    world.set_order(attempt.order_number, 2)  # the bank finished the charge after all
    world.tick(11)  # operator_recheck_every = 10s in the fast policy
    [after] = world.attempts(sub_id)
    assert after.state == "paid"
    assert world.invoices(sub_id)[0].status == "paid"
    assert world.sub(sub_id).status == "active"
    assert len(world.gateway.payment_calls) == 1  # never charged again


def test_the_slow_poll_asks_rarely_and_stops_after_operator_recheck_for(world: World) -> None:
    _, attempt = world.waiting_for_operator()
    asked = world.gateway.status_calls.count
    before = asked(attempt.order_number)
    world.tick(1)
    world.tick(1)
    assert asked(attempt.order_number) - before <= 1  # not every pass: every 10 s
    world.tick(11)
    assert asked(attempt.order_number) - before >= 1
    world.tick(11 * 60)  # past operator_recheck_for = 10m after the send
    late = asked(attempt.order_number)
    world.tick(30)
    world.tick(30)
    assert asked(attempt.order_number) == late


def test_a_verified_callback_records_a_late_deposit(world: World) -> None:
    sub_id, attempt = world.waiting_for_operator()
    world.set_order(attempt.order_number, 2)
    assert world.charger.reconcile(attempt.id) == "paid_on_recheck"  # what the callback enqueues
    assert world.invoices(sub_id)[0].status == "paid"


def test_billing_reconcile_rechecks_and_flags_a_second_charge(world: World) -> None:
    sub_id, attempt = world.waiting_for_operator()
    [invoice] = world.invoices(sub_id)
    with world.db.transaction() as s:  # paid meanwhile by another order
        s.execute(update(Invoice).where(Invoice.id == invoice.id).values(status="paid"))
    world.set_order(attempt.order_number, 2)
    report = reconcile_now(world.charger)
    assert [row["attempt_id"] for row in report.needs_refund] == [attempt.id]
    assert report.needs_operator == []
    [after] = world.attempts(sub_id)
    assert (after.state, after.needs_refund) == ("paid", True)


def test_manual_and_bulk_retries_are_refused_while_an_attempt_waits_for_an_operator(
    world: World,
) -> None:
    sub_id, attempt = world.waiting_for_operator()
    with pytest.raises(ConflictError, match=f"attempt {attempt.id} .*waits for an operator"):
        world.app.actions.retries.retry(sub_id, actor="ops", reason="customer called")
    with world.db.transaction() as s:  # make it match a bulk retry by category
        s.execute(update(Invoice).values(last_category="transient"))
    bulk = world.app.actions.retries.bulk_retry("transient", actor="ops", reason="outage over")
    assert bulk["count"] == 0
    assert [s["subscription_id"] for s in bulk["skipped"]] == [sub_id]
    dry = world.app.actions.retries.bulk_retry(
        "transient", actor="ops", reason="outage over", dry_run=True
    )
    assert (dry["count"], [s["subscription_id"] for s in dry["skipped"]]) == (0, [sub_id])
    assert len(world.attempts(sub_id)) == 1
    assert len(world.gateway.payment_calls) == 1


def test_a_new_card_does_not_charge_an_invoice_waiting_for_an_operator(world: World) -> None:
    sub_id, _ = world.waiting_for_operator()
    with world.db.transaction() as s:  # it also waits for a card (an older invoice's decline)
        s.execute(update(Subscription).values(status="needs_payment_method"))
    world.app.actions.subscriptions.set_binding(sub_id, "approve-2", actor="crm", reason="new card")
    world.tick(1)
    assert len(world.attempts(sub_id)) == 1
    assert len(world.gateway.payment_calls) == 1


@pytest.mark.parametrize(
    ("order_status", "result", "state", "charges"),
    [
        (2, "paid", "paid", 1),  # DEPOSITED: recorded as paid, nothing more is sent
        (None, "not_charged", "failed", 2),  # no such order: retried now, new orderNumber
        (6, "not_charged", "declined", 2),  # declined (insufficient funds): retried now
    ],
)
def test_resolve_asks_the_gateway_first_and_records_what_it_says(
    world: World, order_status: int | None, result: str, state: str, charges: int
) -> None:
    sub_id, attempt = world.waiting_for_operator()
    world.set_order(attempt.order_number, order_status)
    calls = len(world.gateway.status_calls)
    done = world.app.actions.resolve.resolve(attempt.id, actor="anna", reason="checked the bank")
    assert len(world.gateway.status_calls) == calls + 1
    assert (done["result"], done["state"]) == (result, state)
    assert world.attempts(sub_id)[0].state == state
    with world.db.transaction() as s:  # the bank would approve a new charge now
        s.execute(update(Subscription).values(binding_id="approve-9"))
    world.tick(1)
    assert world.invoices(sub_id)[0].status == "paid"
    assert len(world.gateway.payment_calls) == charges
    assert len(set(world.gateway.payment_calls)) == charges  # never an orderNumber twice
    [resolved] = world.events("attempt_resolved")
    assert (resolved.actor, resolved.attempt_id) == ("anna", attempt.id)
    assert resolved.reason.startswith("checked: ")
    reasons = [e.reason for e in world.events("operator_reason")]
    assert f"resolve attempt {attempt.id}: checked the bank" in reasons


def test_resolve_refuses_while_the_gateway_still_says_pending(world: World) -> None:
    sub_id, attempt = world.waiting_for_operator()
    with pytest.raises(ConflictError, match="nothing changed"):
        world.app.actions.resolve.resolve(attempt.id, actor="anna", reason="checked")
    assert world.attempts(sub_id)[0].state == "needs_operator"
    assert world.invoices(sub_id)[0].next_attempt_at is None
    assert world.events("attempt_resolved") == []


def test_resolve_refuses_an_attempt_that_does_not_wait_for_an_operator(world: World) -> None:
    sub_id = world.subscribe("approve-1")
    world.tick()
    [attempt] = world.attempts(sub_id)
    with pytest.raises(ConflictError, match="not waiting for an operator"):
        world.app.actions.resolve.resolve(attempt.id, actor="anna", reason="checked")


def test_the_audit_accepts_an_invoice_waiting_for_an_operator_and_flags_a_stuck_one(
    world: World,
) -> None:
    from billing.services.read.audit_check import run_audit

    sub_id, _ = world.waiting_for_operator()
    assert run_audit(world.db).ok
    [invoice] = world.invoices(sub_id)
    with world.db.transaction() as s:  # as if the waiting attempt had been dropped
        s.execute(update(ChargeAttempt).values(state="failed"))
    report = run_audit(world.db)
    assert [(p.check, p.invoice_id) for p in report.problems] == [("next_step", invoice.id)]
