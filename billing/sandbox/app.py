"""The sandbox gateway's Starlette app: the RBS endpoints and the ``/sandbox`` controls.

``create_app`` builds the ASGI app; :class:`SandboxConfig` holds every knob. Gateway
endpoints live under ``config.gateway_path``: lenient by default (``/payment/rest``,
``recurrentPayment.do`` with a JSON or form body, the other methods with a form, JSON or
query string); with a ``dialect`` strict (``rbs``: ``/payment/rest``, form bodies but JSON
for recurrentPayment.do; ``all2pay``: ``/v1``, JSON only), refusing a wrongly encoded
request with HTTP 415 and another path with 404 (:mod:`billing.sandbox.strict`). Several
merchant logins (``logins``, ``tokens``) are let in besides the main one; any other
credential gets the gateway's own answer (errorCode 5, "Access denied"). Methods:
``recurrentPayment.do``, ``getOrderStatusExtended.do``, ``refund.do``, ``reverse.do``,
``deposit.do`` and ``decline.do``.
Test controls live under ``/sandbox`` (:mod:`billing.sandbox.controls`).
Nothing here opens a socket; see :mod:`billing.sandbox.server` for that.

``refund.do`` (``orderId`` or else ``orderNumber``; ``amount`` optional, 0 or omitted =
all that is left; ``externalRefundId`` optional) and ``reverse.do`` (``orderId`` or
``orderNumber``) answer ``{"errorCode": "0", "errorMessage": "Success"}`` when done.
Refusals follow the RBS codes of these methods (the all2pay page is silent on them):
"5" bad credentials, no order id, or an amount that is not a whole number ≥ 0;
"6" unknown order; "7" the order is in the wrong state, the amount is more than is left
to refund, or a reversal after the day of the deposit. The rules themselves are in
:mod:`billing.sandbox.ledger`; two-phase mode (``two_phase``: approvals held until
``deposit.do``) and ``decline.do`` are described in :mod:`billing.sandbox.order_calls`.
After a refund getOrderStatusExtended.do shows the
order REFUNDED (orderStatus 4), ``paymentAmountInfo.refundedAmount`` and a ``refunds``
list (with each ``externalRefundId``); after a reversal it is REVERSED (orderStatus 3)
with ``depositedAmount`` 0.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from dataclasses import dataclass, field, replace

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from billing.domain.dialects import Dialect, default_base_path
from billing.errors import ConfigurationError
from billing.sandbox.answers import (
    charge_body,
    error_body,
    now_ms,
    status_body,
)
from billing.sandbox.behaviours import (
    CAPTURE_BEHAVIOURS,
    PENDING_ACTION_CODE,
    PENDING_DESCRIPTION,
    Fault,
    Plan,
    Result,
    Timing,
    apply_fault,
    behaviour_for,
    draw_fault,
    plan_for,
)
from billing.sandbox.controls import CONTROL_ROUTES
from billing.sandbox.ledger import Ledger, Order, OrderState, Refusal
from billing.sandbox.order_calls import admitted, change_order, decline, deposit, runtime
from billing.sandbox.order_calls import answer as _answer
from billing.sandbox.requests import (
    ChargeParams,
    authorized,
    param_text,
    parse_refund_amount,
    read_params,
    validate_charge,
)
from billing.sandbox.strict import strict

DEFAULT_CURRENCY = "643"
_MAX_REFUND_ID = 255
_PAUSE_STEP = 0.05

_HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head><body>"
    "<h1>Internal Server Error</h1><p>The server encountered an internal error.</p>"
    "</body></html>"
)
_HTML_ANTI_DDOS = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    "<h1>Checking your browser before accessing the payment gateway</h1>"
    "<p>This process is automatic. Please allow up to 5 seconds.</p></body></html>"
)


@dataclass(frozen=True)
class SandboxConfig:
    """Every knob of the sandbox gateway. Delays are in seconds."""

    username: str = "sandbox"
    password: str = "sandbox"  # noqa: S105 - a public sandbox default
    #: Accepted instead of username/password when set.
    token: str | None = None
    base_path: str = "/payment/rest"
    #: Strict mode: serve this dialect's paths and refuse other body encodings (HTTP 415).
    dialect: Dialect | None = None
    #: More merchant logins let in: ``(userName, password)`` pairs, and tokens.
    logins: tuple[tuple[str, str], ...] = ()
    tokens: tuple[str, ...] = ()
    #: Added to every gateway call (not to /sandbox controls).
    latency: float = 0.0
    slow_delay: float = 1.0
    timeout_delay: float = 30.0
    #: Status queries of a ``pending`` order still answered pending before it is DEPOSITED.
    pending_queries: int = 1
    #: Probability (0..1) that a recurrentPayment.do call gets a chaos fault.
    fault_rate: float = 0.0
    seed: int = 0
    #: A two-phase merchant: approvals are held (APPROVED) until deposit.do captures them.
    two_phase: bool = False

    def __post_init__(self) -> None:
        for name in ("latency", "slow_delay", "timeout_delay"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"sandbox {name} must not be negative")
        if self.pending_queries < 0:
            raise ConfigurationError("sandbox pending_queries must not be negative")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigurationError("sandbox fault_rate must be between 0 and 1")
        if self.base_path and (not self.base_path.startswith("/") or self.base_path.endswith("/")):
            raise ConfigurationError("sandbox base_path must start and not end with '/'")

    @property
    def gateway_path(self) -> str:
        """Where the gateway methods live: the dialect's base path in strict mode."""
        return default_base_path(self.dialect) if self.dialect else self.base_path


@dataclass
class _Runtime:
    """What the handlers share: settings, the ledger, the chaos dice, the stop flag."""

    config: SandboxConfig
    ledger: Ledger
    stopping: threading.Event
    rng: random.Random = field(init=False)
    rng_lock: threading.Lock = field(default_factory=threading.Lock)

    #: The chaos fault rate now: the config's at start, changed by ``POST /sandbox/faults``.
    fault_rate: float = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.fault_rate = self.config.fault_rate

    def fault(self) -> Fault | None:
        with self.rng_lock:
            return draw_fault(self.rng, self.fault_rate)

    async def pause(self, seconds: float) -> None:
        """Sleep without blocking the loop; cut short when the server stops."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _PAUSE_STEP))


# ---------------------------------------------------------------- handlers


def _new_order(
    charge: ChargeParams, plan: Plan, *, final: bool, pending_queries: int, hold: bool
) -> Order:
    now = now_ms()
    order = Order(
        order_id=str(uuid.uuid4()),
        order_number=charge.order_number,
        binding_id=charge.binding_id,
        amount=charge.amount,
        currency=charge.currency,
        state=OrderState.CREATED,
        action_code=PENDING_ACTION_CODE,
        action_code_description=PENDING_DESCRIPTION,
        created_ms=now,
        description=charge.description,
        client_id=charge.client_id,
        merchant_params=charge.merchant_params,
        hold=hold,
        capture_behaviour=CAPTURE_BEHAVIOURS.get(behaviour_for(charge.binding_id).kind, ""),
    )
    return _settled(order, plan, pending_queries) if final else order


def _settled(order: Order, plan: Plan, pending_queries: int) -> Order:
    """``order`` as the plan leaves it once processing is over."""
    if plan.result is Result.APPROVED:
        return order.approved(now_ms())
    if plan.result is Result.STUCK:
        return replace(
            order,
            action_code=plan.action_code,
            action_code_description=plan.action_description,
        )
    if plan.result is Result.DECLINED:
        return replace(
            order,
            state=OrderState.DECLINED,
            action_code=plan.action_code,
            action_code_description=plan.action_description,
        )
    return replace(
        order,
        action_code=plan.action_code,
        action_code_description=plan.action_description,
        pending_queries_left=pending_queries,
    )


async def recurrent_payment(request: Request) -> Response:
    """``recurrentPayment.do``: charge a binding."""
    rt = runtime(request)
    rt.ledger.record_request("recurrentPayment.do", now_ms())
    params = await read_params(request)
    await rt.pause(rt.config.latency)
    if not authorized(params, rt.config):
        return error_body("5", "Access denied")
    charge = validate_charge(params)
    if isinstance(charge, tuple):
        return error_body(*charge)
    behaviour = behaviour_for(charge.binding_id)
    fault = rt.fault()
    if fault is Fault.HTTP_500:
        return HTMLResponse(_HTML_500, status_code=500)
    order: Order | None = None
    with rt.ledger.atomic() as ledger:
        if ledger.find_by_number(charge.order_number) is not None:
            return error_body(
                "10",
                "An order with this number has already been registered",
                "An order with this number has already been registered.",
            )
        plan = plan_for(
            behaviour,
            call_number=ledger.next_call(charge.binding_id),
            prior_orders=ledger.count_for_binding(charge.binding_id),
        )
        plan = apply_fault(plan, fault)
        if plan.records_order:
            final = plan.timing is not Timing.SLOW
            order = _new_order(
                charge,
                plan,
                final=final,
                pending_queries=rt.config.pending_queries,
                hold=rt.config.two_phase,
            )
            ledger.add(order)
    if plan.timing is Timing.SLOW:
        await rt.pause(rt.config.slow_delay)
        if order is not None:
            order = _settled(order, plan, rt.config.pending_queries)
            rt.ledger.put(order)
    elif plan.timing is Timing.HANG:
        await rt.pause(rt.config.timeout_delay)
    return _charge_answer(plan, order)


def _charge_answer(plan: Plan, order: Order | None) -> Response:
    if plan.result is Result.HTTP_500:
        return HTMLResponse(_HTML_500, status_code=500)
    if plan.result is Result.HTML_PAGE:
        return HTMLResponse(_HTML_ANTI_DDOS)
    if order is None:
        return error_body(plan.error_code, plan.message)
    return JSONResponse(charge_body(plan, order))


async def order_status(request: Request) -> Response:
    """``getOrderStatusExtended.do``: the order by orderId (first) or orderNumber."""
    rt = runtime(request)
    rt.ledger.record_request("getOrderStatusExtended.do", now_ms())
    params = await read_params(request)
    await rt.pause(rt.config.latency)
    if not authorized(params, rt.config):
        return JSONResponse({"errorCode": "5", "errorMessage": "Access denied"})
    order_id = param_text(params, "orderId")
    order_number = param_text(params, "orderNumber")
    if order_id:
        order = rt.ledger.observe(order_id, now_ms())
        missing = "Unregistered orderId"
    elif order_number:
        found = rt.ledger.find_by_number(order_number)
        order = None if found is None else rt.ledger.observe(found.order_id, now_ms())
        missing = "Order not found"
    else:
        return JSONResponse({"errorCode": "5", "errorMessage": "[orderId] is empty"})
    if order is None:
        return JSONResponse({"errorCode": "6", "errorMessage": missing})
    return JSONResponse(status_body(order))


async def refund(request: Request) -> Response:
    """``refund.do``: give back (part of) a deposited order; see the module docstring."""
    begun = await admitted(request, "refund.do")
    if isinstance(begun, Response):
        return begun
    rt, params = begun
    amount = parse_refund_amount(params.get("amount"))
    if isinstance(amount, Refusal):
        return _answer("5", amount.message)
    external = param_text(params, "externalRefundId") or None
    if external is not None and len(external) > _MAX_REFUND_ID:
        return _answer("5", "Incorrect value of [externalRefundId]")
    refund_id = str(uuid.uuid4())
    return change_order(
        rt, params, lambda order: order.refund(amount, external, refund_id, now_ms())
    )


async def reverse(request: Request) -> Response:
    """``reverse.do``: release a hold, or cancel a DEPOSITED order on the (UTC) day of its
    deposit."""
    begun = await admitted(request, "reverse.do")
    if isinstance(begun, Response):
        return begun
    rt, params = begun
    return change_order(rt, params, lambda order: order.reverse(now_ms()))


def create_app(
    config: SandboxConfig | None = None,
    *,
    ledger: Ledger | None = None,
    stopping: threading.Event | None = None,
) -> Starlette:
    """The sandbox gateway as an ASGI app.

    Pass ``ledger`` to inspect the orders from Python; set ``stopping`` to cut short
    every pending delay (the server does this when it shuts down).
    """
    config = config or SandboxConfig()
    base, dialect = config.gateway_path, config.dialect
    status_methods = ["POST"] if dialect else ["GET", "POST"]
    app = Starlette(
        routes=[
            Route(
                f"{base}/recurrentPayment.do",
                strict(dialect, "recurrentPayment.do", recurrent_payment),
                methods=["POST"],
            ),
            Route(
                f"{base}/getOrderStatusExtended.do",
                strict(dialect, "getOrderStatusExtended.do", order_status),
                methods=status_methods,
            ),
            Route(f"{base}/refund.do", strict(dialect, "refund.do", refund), methods=["POST"]),
            Route(f"{base}/reverse.do", strict(dialect, "reverse.do", reverse), methods=["POST"]),
            Route(f"{base}/deposit.do", strict(dialect, "deposit.do", deposit), methods=["POST"]),
            Route(f"{base}/decline.do", strict(dialect, "decline.do", decline), methods=["POST"]),
            *CONTROL_ROUTES,
        ]
    )
    app.state.sandbox = _Runtime(
        config=config,
        ledger=ledger if ledger is not None else Ledger(),
        stopping=stopping if stopping is not None else threading.Event(),
    )
    return app
