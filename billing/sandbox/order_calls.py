"""The sandbox's two-phase and cancellation endpoints: ``deposit.do`` (capture a held
order) and ``decline.do`` (make an unpaid order final), plus the errorCode answer and order
lookup they share with refund.do and reverse.do. What happens to an order is decided by
:mod:`billing.sandbox.ledger`; this module only reads requests and answers.

Two-phase mode (``SandboxConfig.two_phase``): an approved charge is held (APPROVED,
orderStatus 1) until ``deposit.do`` (``orderId`` or ``orderNumber``; ``amount`` 0 or
omitted = all) captures it; ``reverse.do`` releases a hold. ``decline.do`` makes a CREATED
order DECLINED (actionCode 4005). Both answer errorCode "0" when done and "7" when the
order is in another state (already captured, declined, reversed...): the order's status
tells what it became.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from billing.sandbox.answers import now_ms
from billing.sandbox.ledger import Ledger, Order, OrderState, Refusal
from billing.sandbox.requests import authorized, param_text, parse_refund_amount, read_params

if TYPE_CHECKING:
    from billing.sandbox.app import _Runtime


def runtime(request: Request) -> _Runtime:
    """The sandbox's state (config, ledger, stop event) that ``create_app`` hung on the app."""
    found: _Runtime = request.app.state.sandbox
    return found


def answer(code: str, message: str) -> JSONResponse:
    """The errorCode/errorMessage answer of refund.do and reverse.do."""
    return JSONResponse({"errorCode": code, "errorMessage": message})


def find_order(ledger: Ledger, params: dict[str, Any]) -> Order | JSONResponse:
    """The order named by ``orderId`` (first) or ``orderNumber``, or the error answer."""
    order_id = param_text(params, "orderId")
    order_number = param_text(params, "orderNumber")
    if order_id:
        order = ledger.find_by_id(order_id)
        missing = "Unregistered orderId"
    elif order_number:
        order = ledger.find_by_number(order_number)
        missing = "Order not found"
    else:
        return answer("5", "[orderId] is empty")
    return answer("6", missing) if order is None else order


async def admitted(request: Request, method: str) -> tuple[_Runtime, dict[str, Any]] | Response:
    """The call noted, its parameters read and its credentials checked (else the answer)."""
    rt = runtime(request)
    rt.ledger.record_request(method, now_ms())
    params = await read_params(request)
    await rt.pause(rt.config.latency)
    if not authorized(params, rt.config):
        return answer("5", "Access denied")
    return rt, params


def change_order(
    rt: _Runtime, params: dict[str, Any], change: Callable[[Order], Order | Refusal]
) -> JSONResponse:
    """Apply ``change`` to the named order: "0" when done, "7" when the ledger refuses."""
    with rt.ledger.atomic() as ledger:
        order = find_order(ledger, params)
        if isinstance(order, JSONResponse):
            return order
        after = change(order)
        if isinstance(after, Refusal):
            return answer("7", after.message)
        ledger.put(after)
    return answer("0", "Success")


async def deposit(request: Request) -> Response:
    """``deposit.do``: capture a held (two-phase) order; see the module docstring."""
    begun = await admitted(request, "deposit.do")
    if isinstance(begun, Response):
        return begun
    rt, params = begun
    amount = parse_refund_amount(params.get("amount"))
    if isinstance(amount, Refusal):
        return answer("5", amount.message)
    with rt.ledger.atomic() as ledger:
        order = find_order(ledger, params)
        if isinstance(order, JSONResponse):
            return order
        if order.capture_behaviour == "refuse_once" and order.state is OrderState.APPROVED:
            ledger.put(replace(order, capture_behaviour=""))
            return answer("7", "Capture is not possible: the issuer refused the completion")
        done = change_order(rt, params, lambda held: held.capture(amount, now_ms()))
    if order.capture_behaviour == "hang":
        await rt.pause(rt.config.timeout_delay)
    return done


async def decline(request: Request) -> Response:
    """``decline.do``: make an unpaid (CREATED) order final, DECLINED with actionCode 4005."""
    begun = await admitted(request, "decline.do")
    if isinstance(begun, Response):
        return begun
    rt, params = begun
    return change_order(rt, params, Order.decline)
