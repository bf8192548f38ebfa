"""An answer that names an order is settled by that order's status (issue 8, items 6 and 9).

* A recurrentPayment.do answer with a non-zero error code next to an order block saying
  DEPOSITED must not lead to a second charge under a new orderNumber.
* A final DECLINED order whose actionCode we cannot read is a soft decline: retried on
  the dunning schedule, never polled for days and handed to an operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from billing.domain.model import Category
from billing.gateway.classify import classify_payment, classify_status
from billing.gateway.results import GatewayResult, JsonReply
from tests.support.scripted_world import ScriptedWorld, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ScriptedWorld]:
    w = make_world(tmp_path)
    yield w
    w.db.dispose()


def _block(order_number: str, amount: int, status: int, action: int | None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "errorCode": "0",
        "orderNumber": order_number,
        "orderStatus": status,
        "amount": amount,
        "currency": "643",
        "paymentAmountInfo": {"paymentState": "DEPOSITED" if status == 2 else "DECLINED"},
    }
    if action is not None:
        block["actionCode"] = action
    return block


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("7", "System error"),
        ("5", "Invalid amount"),
        ("1", "The funds on the card are not sufficient"),
        ("2", "The binding is not found"),
    ],
)
def test_an_error_code_next_to_a_deposited_order_is_settled_as_paid_not_recharged(
    world: ScriptedWorld, code: str, text: str
) -> None:
    def script(number: str, amount: int, currency: str, description: str | None) -> GatewayResult:
        order_id = world.gateway.register(number, amount, status=2, action=0)
        body = {
            "success": False,
            "error": {"code": code, "description": text, "message": text},
            "data": {"orderId": order_id},
            "orderStatus": _block(number, amount, 2, 0),
        }
        return JsonReply(200, body)

    world.gateway.script = script
    sub_id = world.subscribe("approve-1")
    world.tick()
    world.tick(5)
    world.tick(60)
    [invoice] = world.invoices(sub_id)
    assert invoice.status == "paid"
    assert len(world.gateway.payment_calls) == 1  # never charged under a new orderNumber
    assert world.sub(sub_id).status == "active"


def test_an_error_code_next_to_an_order_id_waits_for_the_status_when_it_is_pending(
    world: ScriptedWorld,
) -> None:
    def script(number: str, amount: int, currency: str, description: str | None) -> GatewayResult:
        order_id = world.gateway.register(number, amount, status=0, action=0)
        text = "System error"
        body = {"success": False, "error": {"code": "7", "description": text}}
        return JsonReply(200, body | {"data": {"orderId": order_id}})

    world.gateway.script = script
    sub_id = world.subscribe("approve-1")
    world.tick()
    for _ in range(5):
        world.tick(3)
    [attempt] = world.attempts(sub_id)
    assert attempt.state == "unknown"  # reconciled by status, not retried
    assert len(world.gateway.payment_calls) == 1


@pytest.mark.parametrize("action", [None, 0, -2007, -100, 424242])
def test_a_final_decline_with_an_unreadable_code_is_retried_on_the_dunning_schedule(
    world: ScriptedWorld, action: int | None
) -> None:
    def script(number: str, amount: int, currency: str, description: str | None) -> GatewayResult:
        world.gateway.register(number, amount, status=6, action=action or 0)
        block = _block(number, amount, 6, action)
        return JsonReply(200, {"success": True, "data": {"orderId": "x"}, "orderStatus": block})

    world.gateway.script = script
    sub_id = world.subscribe("approve-1")
    world.tick()
    sub = world.sub(sub_id)
    assert sub.status == "past_due"
    [first] = world.attempts(sub_id)
    assert (first.state, first.category, first.reason) == (
        "declined",
        "soft_decline",
        "declined_unknown_reason",
    )
    assert first.action_code == action
    world.tick(1)  # dunning retry 1 of 3 ("1s" in the fast policy)
    assert len(world.gateway.payment_calls) == 2
    assert not [a for a in world.attempts(sub_id) if a.state == "needs_operator"]


def test_status_and_payment_answers_agree_on_an_unreadable_final_decline() -> None:
    block = {"errorCode": "0", "orderStatus": 6, "actionCode": -2007}
    for outcome in (
        classify_status(JsonReply(200, block)),
        classify_payment(JsonReply(200, {"success": True, "orderStatus": block})),
    ):
        assert outcome.category is Category.SOFT_DECLINE
        assert outcome.action_code == -2007


def test_a_deposited_block_next_to_an_error_code_is_never_read_as_a_decline() -> None:
    body = {
        "success": False,
        "error": {"code": "1", "message": "The funds on the card are not sufficient"},
        "orderStatus": {"errorCode": "0", "orderStatus": 2, "actionCode": 0},
    }
    outcome = classify_payment(JsonReply(200, body))
    assert (outcome.category, outcome.reason) == (Category.UNKNOWN, "error_with_order")
