"""The sandbox's test controls under ``/sandbox``: ``GET ledger`` (``?state=REFUNDED``,
``?bindingId=...``), ``GET requests`` (``?since=MS``: every gateway call served, as
``[epoch ms, method]``, for checking a rate limit), ``POST reset``, ``POST faults``
(``{"fault_rate": 0.0}``: the chaos fault rate from now on), ``GET health``.

They read or reset the ledger and set the fault dice; they never answer as the gateway does
nor change an order.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing.sandbox.ledger import OrderState
from billing.sandbox.order_calls import runtime


async def ledger_view(request: Request) -> Response:
    """``GET /sandbox/ledger``: the bank's view of every order."""
    rt = runtime(request)
    state_name = request.query_params.get("state")
    binding_id = request.query_params.get("bindingId")
    try:
        state = OrderState(state_name.upper()) if state_name else None
    except ValueError:
        return JSONResponse({"error": f"unknown state {state_name!r}"}, status_code=400)
    orders = [
        o.to_json()
        for o in rt.ledger.orders(state)
        if binding_id is None or o.binding_id == binding_id
    ]
    return JSONResponse({"orders": orders})


async def requests_view(request: Request) -> Response:
    """``GET /sandbox/requests?since=MS``: the gateway calls served, ``[ms, method]`` each."""
    since = request.query_params.get("since", "0")
    if not since.isdigit():
        return JSONResponse({"error": f"since must be epoch milliseconds, not {since!r}"}, 400)
    calls = runtime(request).ledger.requests(int(since))
    return JSONResponse({"requests": [[ms, method] for ms, method in calls]})


async def reset(request: Request) -> Response:
    """``POST /sandbox/reset``: forget every order and counter."""
    runtime(request).ledger.reset()
    return JSONResponse({"ok": True})


async def faults(request: Request) -> Response:
    """``POST /sandbox/faults`` with ``{"fault_rate": 0.0}``: change the chaos fault rate of
    the running sandbox (a chaos run turns faults off when its storm is over)."""
    try:
        rate = float((await request.json())["fault_rate"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'expected {"fault_rate": <0..1>}'}, status_code=400)
    if not 0.0 <= rate <= 1.0:
        return JSONResponse({"error": "fault_rate must be between 0 and 1"}, status_code=400)
    rt = runtime(request)
    with rt.rng_lock:
        rt.fault_rate = rate
    return JSONResponse({"fault_rate": rate})


async def health(request: Request) -> Response:
    """``GET /sandbox/health``."""
    return JSONResponse({"ok": True})


CONTROL_ROUTES = (
    Route("/sandbox/ledger", ledger_view, methods=["GET"]),
    Route("/sandbox/requests", requests_view, methods=["GET"]),
    Route("/sandbox/reset", reset, methods=["POST"]),
    Route("/sandbox/faults", faults, methods=["POST"]),
    Route("/sandbox/health", health, methods=["GET"]),
)
