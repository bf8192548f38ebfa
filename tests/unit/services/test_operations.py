"""Operator and backend use cases (billing.services.actions and read) on SQLite with fakes.

Each test is a story an operator would tell: pause a customer, cancel at the end of the
month, refund a double charge once however often the button is clicked, retry everyone
whose card had no funds, and read the dunning timeline in words.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from billing.domain.circuit_breaker import Circuit, CircuitState
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.errors import ChargingPausedError, ConflictError, NotFoundError, ValidationError
from billing.gateway.classify_action import RefundState, classify_action
from billing.gateway.port import RefundRequest
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)
from billing.services.actions import invoices as invoice_actions
from billing.services.idempotency import Stored
from billing.storage.circuit_row import save_circuit
from billing.storage.tables import (
    ChargeAttempt,
    Event,
    IdempotencyKey,
    Invoice,
    Refund,
    Subscription,
)
from tests.support.world import FAST_POLICY, ServiceWorld, sqlite_url

OK = {"errorCode": "0", "errorMessage": "Success"}


@dataclass
class World(ServiceWorld):
    actor: str = "ops-anna"
    notes: list[str] = field(default_factory=list)

    def events(self, **where: Any) -> list[Event]:
        with self.db.transaction() as s:
            query = select(Event).order_by(Event.id)
            for name, value in where.items():
                query = query.where(getattr(Event, name) == value)
            return list(s.scalars(query))

    def count(self, table: type[Any]) -> int:
        with self.db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)

    def refund(self, **request: Any) -> Stored:
        """A refund asked for by this world's operator, with the reason "r" unless given."""
        return self.app.actions.refunds.refund(**{"actor": self.actor, "reason": "r", **request})

    def paid_attempt(self) -> int:
        sub_id = self.subscribe("approve-1")
        self.tick()
        [attempt] = self.attempts(sub_id)
        assert attempt.state == "paid"
        return attempt.id


def _world(tmp_path: Path, policy_path: Path | None) -> World:
    policy = load_policy(policy_path) if policy_path else DEFAULT_POLICY
    return World.build(sqlite_url(tmp_path), policy=policy, stale_sending_after=30)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with _world(tmp_path, FAST_POLICY) as w:
        yield w


@pytest.fixture
def slow_world(tmp_path: Path) -> Iterator[World]:
    """The production policy (retries after 1, 3, 5 and 7 days)."""
    w = _world(tmp_path, None)
    yield w
    w.db.dispose()


# -- creating -----------------------------------------------------------------------------------


def test_create_with_the_same_idempotency_key_and_body_creates_once(world: World) -> None:
    new = NewSubscription("cust-9", "approve-9", 1000, "0 3 1 * *", start_at=world.clock())
    first = world.app.actions.subscriptions.create(
        new, actor="crm", reason="signup", idempotency_key="k-1"
    )
    again = world.app.actions.subscriptions.create(
        new, actor="crm", reason="signup", idempotency_key="k-1"
    )
    assert not first.replayed and again.replayed
    assert again.body == first.body
    assert world.count(Subscription) == 1
    changed = NewSubscription("cust-9", "approve-9", 2000, "0 3 1 * *", start_at=world.clock())
    with pytest.raises(ConflictError, match="different request"):
        world.app.actions.subscriptions.create(
            changed, actor="crm", reason="signup", idempotency_key="k-1"
        )
    assert world.count(Subscription) == 1
    [created] = world.events(kind="subscription_created")
    assert (created.actor, created.reason.split(" (")[0]) == ("crm", "signup")


def test_invalid_input_changes_nothing(world: World) -> None:
    bad = NewSubscription("cust-1", "approve-1", 100, "every day", start_at=world.clock())
    with pytest.raises(ValidationError, match="cron"):
        world.app.actions.subscriptions.create(
            bad, actor="crm", reason="signup", idempotency_key="k-2"
        )
    with pytest.raises(ValidationError, match="reason is required"):
        world.app.actions.subscriptions.create(
            NewSubscription("cust-1", "approve-1", 100, "0 3 1 * *"), actor="crm", reason="  "
        )
    assert world.count(Subscription) == world.count(IdempotencyKey) == world.count(Event) == 0


# -- pause, resume, cancel, update --------------------------------------------------------------


def test_a_paused_subscription_is_not_billed_and_paused_periods_are_not_billed_later(
    world: World,
) -> None:
    sub_id = world.subscribe()
    world.tick()
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]
    view = world.app.actions.pausing.pause(
        sub_id, actor=world.actor, reason="customer asked for a break"
    )
    assert (view["status"], view["paused_from"]) == ("paused", "active")
    world.tick(seconds=75 * 86400)  # two billing periods go by
    assert len(world.invoices(sub_id)) == 1
    resumed = world.app.actions.pausing.resume(sub_id, actor=world.actor, reason="customer is back")
    assert resumed["status"] == "active"
    next_charge = world.sub(sub_id).next_charge_at
    assert next_charge is not None and next_charge > world.clock()
    world.tick()
    assert len(world.invoices(sub_id)) == 1  # nothing billed for the paused months
    [paused, back] = world.events(kind="subscription_status", actor=world.actor)
    assert (paused.from_state, paused.to_state, paused.reason) == (
        "active",
        "paused",
        "customer asked for a break",
    )
    assert (back.from_state, back.to_state) == ("paused", "active")


def test_pausing_withdraws_a_stored_attempt_before_any_worker_sends_it(world: World) -> None:
    sub_id = world.subscribe()
    world.scheduler.run_pass()  # the attempt is stored and enqueued, not yet sent
    [attempt] = world.attempts(sub_id)
    view = world.app.actions.pausing.pause(sub_id, actor=world.actor, reason="dispute")
    assert view["held_attempts"] == [attempt.id]
    world.work()  # the queued message arrives
    assert world.gateway.payment_calls == []
    assert world.attempts(sub_id)[0].state == "failed"
    world.app.actions.pausing.resume(sub_id, actor=world.actor, reason="dispute settled")
    world.tick()
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]
    assert len(world.gateway.deposited()) == 1


def test_a_charge_refused_by_a_worker_while_paused_is_made_after_resume(world: World) -> None:
    sub_id = world.subscribe()
    world.scheduler.run_pass()
    [attempt] = world.attempts(sub_id)
    # The pause lands between the scheduler's read and its commit: the attempt is stored
    # after the pause withdrew what was pending, and the worker refuses to send it.
    with world.db.transaction() as s:
        sub = s.get_one(Subscription, sub_id)
        sub.status, sub.paused_from, sub.paused_at = "paused", "active", world.clock()
    world.work()
    assert world.attempts(sub_id)[0].reason == "subscription_paused"
    assert world.invoices(sub_id)[0].next_attempt_at is None
    world.app.actions.pausing.resume(sub_id, actor=world.actor, reason="go")
    world.tick()
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]
    assert attempt.id in [a.id for a in world.attempts(sub_id)]


def test_resume_keeps_a_card_problem_unless_a_new_card_was_set(world: World) -> None:
    sub_id = world.subscribe("notfound-1")
    world.tick()
    world.tick(seconds=2)  # "binding not found" confirmed
    assert world.sub(sub_id).status == "needs_payment_method"
    world.app.actions.pausing.pause(sub_id, actor=world.actor, reason="hold")
    assert world.app.actions.pausing.resume(sub_id, actor=world.actor, reason="go")["status"] == (
        "needs_payment_method"
    )
    world.app.actions.pausing.pause(sub_id, actor=world.actor, reason="hold")
    world.app.actions.subscriptions.set_binding(
        sub_id, "approve-2", actor="crm", reason="customer added a card"
    )
    assert world.sub(sub_id).status == "paused"
    assert (
        world.app.actions.pausing.resume(sub_id, actor=world.actor, reason="go")["status"]
        == "past_due"
    )
    world.tick()
    assert [i.status for i in world.invoices(sub_id)] == ["paid"]
    assert world.sub(sub_id).status == "active"
    [note] = world.events(kind="operator_reason")
    assert (note.actor, note.reason) == ("crm", "set binding: customer added a card")


def test_cancel_now_voids_what_is_open(world: World) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    assert world.sub(sub_id).status == "past_due"
    view = world.app.actions.pausing.cancel(sub_id, actor=world.actor, reason="customer left")
    [invoice] = world.invoices(sub_id)
    assert view["voided_invoices"] == [invoice.id]
    assert (view["status"], invoice.status) == ("canceled", "void")
    assert world.sub(sub_id).next_charge_at is None
    [voided] = world.events(kind="invoice_void")
    assert (voided.actor, voided.reason) == (world.actor, "customer left")
    with pytest.raises(ConflictError, match="already canceled"):
        world.app.actions.pausing.cancel(sub_id, actor=world.actor, reason="again")
    world.tick(seconds=60)
    assert len(world.attempts(sub_id)) == 1  # no retry of a void invoice


def test_cancel_at_period_end_bills_no_further_period(world: World) -> None:
    sub_id = world.subscribe()
    world.tick()
    period_end = world.sub(sub_id).next_charge_at
    view = world.app.actions.pausing.cancel(
        sub_id, actor=world.actor, reason="downgrade", at_period_end=True
    )
    assert view["status"] == "active" and view["ends_at"] == period_end.isoformat()
    world.clock.now = period_end + timedelta(minutes=1)
    report = world.scheduler.run_pass()
    assert report.canceled == 1 and report.invoices_opened == 0
    assert world.sub(sub_id).status == "canceled"
    assert len(world.invoices(sub_id)) == 1


def test_resume_undoes_a_cancellation_at_period_end(world: World) -> None:
    sub_id = world.subscribe()
    world.tick()
    period_end = world.sub(sub_id).next_charge_at
    world.app.actions.pausing.cancel(
        sub_id, actor=world.actor, reason="downgrade", at_period_end=True
    )
    with pytest.raises(ConflictError, match="already set to cancel"):
        world.app.actions.pausing.cancel(sub_id, actor=world.actor, reason="x", at_period_end=True)
    view = world.app.actions.pausing.resume(sub_id, actor=world.actor, reason="changed their mind")
    assert view["ends_at"] is None and view["next_charge_at"] == period_end.isoformat()
    world.clock.now = period_end
    world.tick()
    assert [i.status for i in world.invoices(sub_id)] == ["paid", "paid"]


def test_update_validates_like_create_and_recomputes_the_next_charge(world: World) -> None:
    sub_id = world.subscribe()
    with pytest.raises(ValidationError, match="amount"):
        world.app.actions.subscriptions.update(sub_id, actor=world.actor, reason="x", amount=0)
    with pytest.raises(ValidationError, match="timezone"):
        world.app.actions.subscriptions.update(
            sub_id, actor=world.actor, reason="x", timezone="Mars/Base"
        )
    with pytest.raises(ValidationError, match="nothing to change"):
        world.app.actions.subscriptions.update(sub_id, actor=world.actor, reason="x")
    assert world.events(kind="subscription_updated") == []
    view = world.app.actions.subscriptions.update(
        sub_id, actor=world.actor, reason="new plan", amount=59900, schedule="0 9 * * 1"
    )
    assert (view["amount"], view["schedule"]) == (59900, "0 9 * * 1")
    next_charge = world.sub(sub_id).next_charge_at
    assert next_charge is not None and next_charge.weekday() == 0  # a Monday, 09:00 MSK
    [event] = world.events(kind="subscription_updated")
    assert event.actor == world.actor and "amount 49900 → 59900" in event.reason


# -- invoices ---------------------------------------------------------------------------------


def test_void_and_write_off_are_refused_for_paid_invoices_and_charges_in_flight(
    world: World,
) -> None:
    paid_sub = world.subscribe()
    world.tick()
    [paid] = world.invoices(paid_sub)
    with pytest.raises(ConflictError, match="paid: refund"):
        world.app.actions.invoices.void(paid.id, actor=world.actor, reason="x")
    busy_sub = world.subscribe("approve-2", customer_id="cust-2")
    world.scheduler.run_pass()
    [busy] = world.invoices(busy_sub)
    with world.db.transaction() as s:  # a worker has sent it: the gateway may be charging
        s.get_one(ChargeAttempt, world.attempts(busy_sub)[0].id).state = "sending"
    with pytest.raises(ConflictError, match="in flight"):
        world.app.actions.invoices.write_off(busy.id, actor=world.actor, reason="x")
    assert world.invoices(busy_sub)[0].status == "open"
    assert world.events(kind="invoice_uncollectible") == []
    with pytest.raises(NotFoundError):
        world.app.actions.invoices.void(999, actor=world.actor, reason="x")


def test_writing_off_the_failing_invoice_ends_dunning(world: World) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    [invoice] = world.invoices(sub_id)
    closed = world.app.actions.invoices.write_off(invoice.id, actor=world.actor, reason="bad debt")
    assert closed["status"] == "uncollectible"
    assert world.sub(sub_id).status == "active"
    world.tick(seconds=60)
    assert len(world.attempts(sub_id)) == 1
    listed = world.app.read.list_invoices(status="uncollectible")
    assert [i["id"] for i in listed] == [invoice.id]
    shown = world.app.read.show_invoice(invoice.id)
    assert [e["kind"] for e in shown["events"]][-1] == "invoice_uncollectible"


def test_the_audit_row_is_written_with_the_change_or_not_at_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    [invoice] = world.invoices(sub_id)

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the process dies half-way")

    # The invoice is closed and its audit row added, then the transaction fails.
    monkeypatch.setattr(invoice_actions, "recover_if_nothing_fails", crash)
    with pytest.raises(RuntimeError):
        world.app.actions.invoices.void(invoice.id, actor=world.actor, reason="goodwill")
    assert world.invoices(sub_id)[0].status == "open"
    assert world.events(actor=world.actor) == []
    monkeypatch.undo()
    # A refused change leaves no reason row either.
    paid_sub = world.subscribe("approve-1", customer_id="cust-2")
    world.tick()
    with pytest.raises(ConflictError, match="no open invoice"):
        world.app.actions.retries.retry(paid_sub, actor=world.actor, reason="try")
    assert world.events(kind="operator_reason") == []


# -- retries ----------------------------------------------------------------------------------


def test_manual_retry_rules(world: World) -> None:
    paid_sub = world.subscribe()
    world.tick()
    with pytest.raises(ConflictError, match="no open invoice"):
        world.app.actions.retries.retry(paid_sub, actor=world.actor, reason="x")

    busy_sub = world.subscribe("approve-2", customer_id="cust-2")
    world.scheduler.run_pass()
    with pytest.raises(ConflictError, match="in flight"):
        world.app.actions.retries.retry(busy_sub, actor=world.actor, reason="x")
    world.work()

    failing = world.subscribe("insufficient-3", customer_id="cust-3")
    world.tick()
    world.app.actions.pausing.pause(failing, actor=world.actor, reason="hold")
    with pytest.raises(ConflictError, match="paused: resume it first"):
        world.app.actions.retries.retry(failing, actor=world.actor, reason="x")
    world.app.actions.pausing.resume(failing, actor=world.actor, reason="go")

    with world.db.transaction() as s:
        save_circuit(
            s,
            Circuit(
                state=CircuitState.OPEN,
                reason="access denied",
                opened_at=world.clock(),
                retry_at=world.clock() + timedelta(hours=1),
            ),
            world.clock(),
        )
    with pytest.raises(ChargingPausedError, match="access denied"):
        world.app.actions.retries.retry(failing, actor=world.actor, reason="x")


def test_a_manual_retry_that_pays_cancels_the_pending_dunning(world: World) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    with world.db.transaction() as s:  # the customer topped up the card
        s.get_one(Subscription, sub_id).binding_id = "approve-1"
    result = world.app.actions.retries.retry(sub_id, actor=world.actor, reason="customer topped up")
    world.work()
    [invoice] = world.invoices(sub_id)
    assert (invoice.status, invoice.next_attempt_at) == ("paid", None)
    assert world.attempts(sub_id)[-1].trigger == "manual"
    assert world.sub(sub_id).status == "active"
    [note] = world.events(kind="operator_reason")
    assert note.reason == "manual retry: customer topped up"
    assert result["attempt_id"] == world.attempts(sub_id)[-1].id


def test_bulk_retry_dry_run_writes_nothing_and_the_real_run_retries_the_matching(
    world: World,
) -> None:
    poor = [world.subscribe(f"insufficient-{n}", customer_id=f"p{n}") for n in range(3)]
    lost = world.subscribe("notfound-1", customer_id="lost")
    world.subscribe("approve-1", customer_id="fine")
    world.tick()
    before = (world.count(Event), world.count(ChargeAttempt), world.count(Invoice))
    dry = world.app.actions.retries.bulk_retry(
        "insufficient_funds", actor=world.actor, reason="bank outage over", dry_run=True
    )
    assert dry == {
        "dry_run": True,
        "failure": "insufficient_funds",
        "count": 3,
        "subscription_ids": poor,
    }
    assert (world.count(Event), world.count(ChargeAttempt), world.count(Invoice)) == before
    assert world.dispatcher.charges == []
    by_category = world.app.actions.retries.bulk_retry(
        "soft_decline", actor="x", reason="y", dry_run=True
    )
    assert by_category["subscription_ids"] == poor
    done = world.app.actions.retries.bulk_retry(
        "insufficient_funds", actor=world.actor, reason="funds back"
    )
    assert done["subscription_ids"] == poor and done["skipped"] == []
    assert len(world.dispatcher.charges) == 3
    assert lost not in done["subscription_ids"]
    with pytest.raises(ValidationError, match="failure"):
        world.app.actions.retries.bulk_retry(
            "Insufficient Funds!", actor="x", reason="y", dry_run=True
        )


# -- refunds ----------------------------------------------------------------------------------


def test_a_repeated_refund_request_refunds_once(world: World) -> None:
    attempt_id = world.paid_attempt()
    first = world.refund(attempt_id=attempt_id, reason="double click", idempotency_key="r-1")
    again = world.refund(attempt_id=attempt_id, reason="double click", idempotency_key="r-1")
    assert first.body["state"] == "succeeded" and again.replayed
    assert again.body["id"] == first.body["id"]
    assert len(world.gateway.refund_calls) == 1
    order_id, amount, external = world.gateway.refund_calls[0]
    assert order_id == world.attempts(1)[0].gateway_order_id
    assert amount == 49900 and external == first.body["external_refund_id"]
    assert world.count(Refund) == 1
    [requested] = world.events(kind="refund_requested")
    [succeeded] = world.events(kind="refund_succeeded")
    assert requested.actor == succeeded.actor == world.actor
    with pytest.raises(ConflictError, match="different request"):
        world.refund(
            attempt_id=attempt_id, amount=100, reason="double click", idempotency_key="r-1"
        )


def test_the_refund_row_is_stored_before_the_gateway_is_called(world: World) -> None:
    attempt_id = world.paid_attempt()
    seen: list[tuple[str, str]] = []
    original = world.gateway.refund

    def watching(request: RefundRequest) -> GatewayResult:
        with world.db.transaction() as s:  # another connection: only committed rows
            row = s.scalars(select(Refund)).one()
            seen.append((row.state, row.external_refund_id))
        return original(request)

    world.gateway.refund = watching  # type: ignore[method-assign]
    body = world.refund(attempt_id=attempt_id).body
    assert seen == [("requested", body["external_refund_id"])]


def test_partial_refunds_are_capped_at_what_was_paid(world: World) -> None:
    attempt_id = world.paid_attempt()
    for key in ("a", "b"):
        body = world.refund(attempt_id=attempt_id, amount=20000, idempotency_key=key).body
        assert body["state"] == "succeeded"
    assert body["refundable_left"] == 9900
    with pytest.raises(ConflictError, match="only 9900 of the 49900"):
        world.refund(attempt_id=attempt_id, amount=20000, idempotency_key="c")
    rest = world.refund(attempt_id=attempt_id).body
    assert (rest["amount"], rest["refundable_left"]) == (9900, 0)
    with pytest.raises(ConflictError, match="refunded in full"):
        world.refund(attempt_id=attempt_id)
    assert sum(world.gateway.refunded.values()) == 49900
    with pytest.raises(ValidationError, match="positive"):
        world.refund(attempt_id=attempt_id, amount=0)


def test_refunds_are_refused_for_unpaid_attempts(world: World) -> None:
    sub_id = world.subscribe("insufficient-1")
    world.tick()
    [declined] = world.attempts(sub_id)
    with pytest.raises(ConflictError, match="only a paid attempt"):
        world.refund(attempt_id=declined.id)
    with pytest.raises(ConflictError, match="no paid attempt"):
        world.refund(invoice_id=declined.invoice_id)
    assert world.gateway.refund_calls == [] and world.count(Refund) == 0


def test_an_unknown_refund_outcome_is_never_reported_as_success(world: World) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.refund_mode = "timeout"
    body = world.refund(attempt_id=attempt_id, amount=10000).body
    assert body["state"] == "unknown"
    assert "may have been processed" in body["message"]
    # It counts as taken until someone checks: no second refund past what was paid.
    assert body["refundable_left"] == 39900
    [event] = world.events(kind="refund_unknown")
    assert "OUTCOME UNKNOWN" in event.reason
    assert world.app.read.status()["refunds_unknown"] == 1


def test_a_refused_refund_frees_its_amount(world: World) -> None:
    attempt_id = world.paid_attempt()
    world.gateway.refund_mode = "refuse"
    body = world.refund(attempt_id=attempt_id).body
    assert (body["state"], body["error_code"]) == ("failed", "7")
    assert body["refundable_left"] == 49900


def test_refunding_a_double_charge_in_full_clears_its_flag(world: World) -> None:
    attempt_id = world.paid_attempt()
    with world.db.transaction() as s:
        s.get_one(ChargeAttempt, attempt_id).needs_refund = True
    by_invoice = world.refund(
        invoice_id=world.attempts(1)[0].invoice_id, reason="double charge"
    ).body
    assert by_invoice["attempt_id"] == attempt_id
    with world.db.transaction() as s:
        assert s.get_one(ChargeAttempt, attempt_id).needs_refund is False
    assert len(world.events(kind="double_charge_refunded")) == 1


def test_reverse_only_on_the_day_of_payment(world: World) -> None:
    attempt_id = world.paid_attempt()
    world.clock.advance(hours=25)
    with pytest.raises(ConflictError, match="only possible on the day of payment"):
        world.app.actions.refunds.reverse(attempt_id, actor=world.actor, reason="r")
    assert world.gateway.reverse_calls == []

    today = world.subscribe("approve-7", customer_id="cust-7")
    world.tick()
    [attempt] = world.attempts(today)
    world.gateway.reverse_mode = "refuse"
    refused = world.app.actions.refunds.reverse(attempt.id, actor=world.actor, reason="r")
    assert (refused["state"], refused["message"]) == ("failed", "Reversal is not possible")
    world.gateway.reverse_mode = "ok"
    done = world.app.actions.refunds.reverse(attempt.id, actor=world.actor, reason="r")
    assert (done["kind"], done["state"], done["amount"]) == ("reverse", "succeeded", 49900)
    with pytest.raises(ConflictError, match="already reversed"):
        world.app.actions.refunds.reverse(attempt.id, actor=world.actor, reason="r")
    with pytest.raises(ConflictError, match="already reversed"):
        world.refund(attempt_id=attempt.id)


@pytest.mark.parametrize(
    ("result", "state"),
    [
        (JsonReply(200, {"errorCode": "0", "errorMessage": "Success"}), RefundState.SUCCEEDED),
        (JsonReply(200, {"errorCode": 0}), RefundState.SUCCEEDED),
        (JsonReply(200, {"errorCode": "7", "errorMessage": "no"}), RefundState.FAILED),
        (JsonReply(200, {"success": False, "error": {"code": "5"}}), RefundState.FAILED),
        (JsonReply(200, {"success": True}), RefundState.UNKNOWN),
        (JsonReply(500, {"errorCode": "0"}), RefundState.UNKNOWN),
        (ReadTimedOut("read timeout"), RefundState.UNKNOWN),
        (ConnectionFailed("refused"), RefundState.FAILED),
        (ConnectionLost("reset after writing"), RefundState.UNKNOWN),
        (HttpErrorReply(502, "bad gateway"), RefundState.UNKNOWN),
        (HttpErrorReply(404, "not found"), RefundState.FAILED),
        (NotJsonReply(200, "text/html", "<html>"), RefundState.UNKNOWN),
    ],
)
def test_refund_answers_are_classified_without_guessing(
    result: GatewayResult, state: RefundState
) -> None:
    assert classify_action(result).state is state


# -- timeline and audit -----------------------------------------------------------------------


def test_the_timeline_in_words(slow_world: World) -> None:
    world = slow_world
    sub_id = world.subscribe("insufficient-1")
    world.tick()  # declined on 1 Dec 00:00 UTC (03:00 MSK)
    lines = world.app.read.timeline(sub_id)
    assert "insufficient funds on 1 Dec; next retry 2 Dec 03:00 MSK; suspends on 17 Dec" in lines
    assert lines[0] == "next billing period 1 Jan 2027 03:00 MSK (49900 643)"
    world.app.actions.pausing.pause(sub_id, actor="ops-anna", reason="customer on holiday")
    paused = world.app.read.show_subscription(sub_id)["timeline"]
    assert paused[0] == (
        "paused since 1 Dec 03:00 MSK by ops-anna: customer on holiday (was past_due); "
        "no invoices and no charges until resumed"
    )
    assert "insufficient funds on 1 Dec; next retry when resumed" in paused


def test_the_audit_log_lists_what_people_did_newest_first(world: World) -> None:
    sub_id = world.subscribe()
    world.tick()
    world.app.actions.pausing.pause(sub_id, actor="ops-anna", reason="one")
    world.app.actions.pausing.resume(sub_id, actor="ops-bob", reason="two")
    log = world.app.read.audit(limit=10)
    assert [(e["actor"], e["reason"]) for e in log[:2]] == [("ops-bob", "two"), ("ops-anna", "one")]
    assert {e["actor"] for e in log} == {"ops-anna", "ops-bob", "crm"}
    older = world.app.read.audit(limit=10, before_id=log[0]["id"])
    assert older == log[1:]
