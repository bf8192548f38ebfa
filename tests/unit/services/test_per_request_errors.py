"""One subscription's bad data holds that subscription, not everyone (issue 8, item 10).

A currency, amount or description the gateway refuses for one order, or a merchant-side
decline of that order, holds the subscription for an operator with the reason in an
event; other subscriptions keep being charged. After ``update``, ``resume`` makes it
active again and its open invoice is charged with the fixed data. Currencies are
validated against ISO 4217 numeric codes with ASCII digits only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from billing.domain.currencies import validate_currency
from billing.errors import ValidationError
from billing.gateway.results import GatewayResult, JsonReply
from billing.storage.circuit_row import load_circuit
from billing.storage.tables import Event, Subscription
from tests.support.fakes import declined_body, error_body
from tests.support.scripted_world import ScriptedWorld, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ScriptedWorld]:
    w = make_world(tmp_path)
    yield w
    w.db.dispose()


def _force_currency(world: ScriptedWorld, sub_id: int, currency: str) -> None:
    """Data stored before today's validation (or written by hand): it reaches the gateway."""
    with world.db.transaction() as s:
        s.get_one(Subscription, sub_id).currency = currency


def _refuse_currency(
    number: str, amount: int, currency: str, _d: str | None
) -> GatewayResult | None:
    if currency == "999":
        return JsonReply(200, error_body("10", "Incorrect value of [currency]"))
    return None


def _held_reason(world: ScriptedWorld, sub_id: int) -> str:
    with world.db.transaction() as s:
        event = s.scalars(
            select(Event).where(
                Event.subscription_id == sub_id,
                Event.kind == "subscription_status",
                Event.to_state == "held",
            )
        ).one()
        return event.reason


def test_a_currency_the_gateway_refuses_holds_that_subscription_and_no_one_else(
    world: ScriptedWorld,
) -> None:
    world.gateway.script = _refuse_currency
    bad = world.subscribe("approve-bad", customer_id="bad")
    _force_currency(world, bad, "999")
    world.tick()
    assert world.sub(bad).status == "held"
    assert "invalid currency" in _held_reason(world, bad)
    assert "resume" in _held_reason(world, bad)
    with world.db.transaction() as s:
        assert load_circuit(s).allows_charging(world.clock())

    # Later subscriptions due at month start are charged; the held one is not retried.
    good = [world.subscribe(f"approve-{i}", customer_id=f"c{i}") for i in range(3)]
    for _ in range(5):
        world.tick(10)
    for sub_id in good:
        assert [i.status for i in world.invoices(sub_id)] == ["paid"]
    assert len(world.attempts(bad)) == 1


def test_resume_after_update_charges_the_held_invoice_with_the_fixed_currency(
    world: ScriptedWorld,
) -> None:
    world.gateway.script = _refuse_currency
    sub_id = world.subscribe("approve-1")
    _force_currency(world, sub_id, "999")
    world.tick()
    assert world.sub(sub_id).status == "held"
    app = world.app
    app.actions.subscriptions.update(sub_id, actor="op", reason="typo in currency", currency="643")
    view = app.actions.pausing.resume(sub_id, actor="op", reason="currency fixed")
    assert view["status"] == "active"
    world.tick()
    [invoice] = world.invoices(sub_id)
    assert (invoice.status, invoice.currency) == ("paid", "643")
    assert world.gateway.sent[-1]["currency"] == "643"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Invalid amount", "5"),
        ("Incorrect value of [orderDescription]. Links are not allowed", "10"),
        ("Incorrect value of [amount]", "10"),
    ],
)
def test_errors_about_one_request_hold_the_subscription(
    world: ScriptedWorld, text: str, code: str
) -> None:
    world.gateway.script = lambda *_: JsonReply(200, error_body(code, text))
    sub_id = world.subscribe("approve-1")
    world.tick()
    assert world.sub(sub_id).status == "held"
    with world.db.transaction() as s:
        assert load_circuit(s).allows_charging(world.clock())


def test_a_merchant_side_decline_of_one_order_holds_that_subscription(
    world: ScriptedWorld,
) -> None:
    def script(number: str, amount: int, currency: str, _d: str | None) -> GatewayResult:
        order_id = world.gateway.register(number, amount, status=6, action=4005)
        return JsonReply(200, declined_body(number, amount, order_id, 4005))

    world.gateway.script = script
    sub_id = world.subscribe("approve-1")
    world.tick()
    assert world.sub(sub_id).status == "held"
    assert "actionCode 4005" in _held_reason(world, sub_id)
    with world.db.transaction() as s:
        assert load_circuit(s).allows_charging(world.clock())


def test_credential_errors_still_pause_everyone(world: ScriptedWorld) -> None:
    sub_id = world.subscribe("auth-1")
    world.tick()
    assert world.sub(sub_id).status == "active"
    with world.db.transaction() as s:
        assert not load_circuit(s).allows_charging(world.clock())


@pytest.mark.parametrize("code", ["643", "840", "978", "810"])
def test_iso_4217_currencies_are_accepted(code: str) -> None:
    assert validate_currency(code) == code


@pytest.mark.parametrize("code", ["999", "000", "963", "959", "\u0666\u0664\u0663", "64", "RUB"])
def test_codes_that_name_no_currency_or_use_non_ascii_digits_are_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="currency"):
        validate_currency(code)


@pytest.mark.parametrize("code", ["999", "\u0666\u0664\u0663"])
def test_a_subscription_with_such_a_currency_is_refused_at_creation(
    world: ScriptedWorld, code: str
) -> None:
    with pytest.raises(ValidationError, match="currency"):
        world.subscribe("approve-1", currency=code)


def test_pausing_and_resuming_a_held_subscription_keeps_it_held(world: ScriptedWorld) -> None:
    world.gateway.script = _refuse_currency
    sub_id = world.subscribe("approve-1")
    _force_currency(world, sub_id, "999")
    world.tick()
    world.app.actions.pausing.pause(sub_id, actor="op", reason="customer call")
    assert (
        world.app.actions.pausing.resume(sub_id, actor="op", reason="call over")["status"] == "held"
    )
    world.tick(60)
    assert len(world.attempts(sub_id)) == 1  # the bad currency is not sent again
