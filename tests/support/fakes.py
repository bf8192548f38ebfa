"""Fakes (not mocks) for the service tests: a scripted gateway and a manual clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from billing.gateway.port import (
    ChargeRequest,
    DeclineRequest,
    DepositRequest,
    RefundRequest,
    ReverseRequest,
)
from billing.gateway.results import (
    ConnectionFailed,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    ReadTimedOut,
)

OK = {"errorCode": "0", "errorMessage": "Success"}
#: One recurring charge as the gateway port receives it (the rate-limit and send-gate tests).
PAYMENT = ChargeRequest(
    order_number="INV-1-1",
    binding_id="b-123",
    amount=1990,
    currency="643",
    description="Pro plan",
    client_id="cus_1",
    language="en",
)


class ManualClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 12, 1, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def paid_body(order_number: str, amount: int, order_id: str) -> dict[str, Any]:
    """The doc's "Example of successful payment", with our numbers."""
    return {
        "success": True,
        "data": {"orderId": order_id},
        "orderStatus": {
            "errorCode": "0",
            "orderNumber": order_number,
            "orderStatus": 2,
            "actionCode": 0,
            "actionCodeDescription": "",
            "amount": amount,
            "currency": "643",
            "paymentAmountInfo": {"paymentState": "DEPOSITED", "depositedAmount": amount},
        },
    }


def error_body(code: str, text: str) -> dict[str, Any]:
    return {"error": {"code": code, "description": text, "message": text}, "success": False}


def declined_body(order_number: str, amount: int, order_id: str, action: int) -> dict[str, Any]:
    return {
        "success": False,
        "error": {
            "code": "1",
            "description": "The funds on the card are not sufficient",
            "message": "The funds on the card are not sufficient",
        },
        "orderStatus": {
            "errorCode": "0",
            "orderNumber": order_number,
            "orderStatus": 6,
            "actionCode": action,
            "amount": amount,
            "currency": "643",
        },
        "data": {"orderId": order_id},
    }


class FakeGateway:
    """Keeps orders like the bank does; behaviour per bindingId prefix, like the sandbox.

    ``approve``, ``insufficient``, ``notfound``, ``auth`` (access denied), ``timeout``
    (charged, then the client times out), ``down`` (connection refused), ``pending``
    (the order stays registered but unpaid), ``stuck`` (the binding's first order stays
    registered but unpaid, later ones approve), ``http500`` (refused before charging),
    ``proxy502`` (charged, but a proxy answered 502).

    It also gives money back. ``refund_mode``: ``ok`` (errorCode 0), ``refuse``
    (errorCode 7), ``timeout`` (the refund happens, the answer is lost), ``lost`` (the
    request is lost before the gateway processes it; no answer either), ``down`` (refused
    before anything is sent). Like the real gateway, a repeated externalRefundId returns
    the first answer without refunding again.
    ``reverse_mode`` likewise (``ok``, ``refuse``, ``timeout``, ``lost``). With
    ``report_refunds`` the order status shows them: a ``refunds`` block (by
    externalRefundId), ``refundedAmount`` and the REFUNDED / REVERSED state.

    Two-phase (``two_phase``): an approved charge is held (orderStatus 1, APPROVED) until
    deposit.do captures it. ``deposit_mode``: ``ok``, ``refuse`` (errorCode 7, still held),
    ``timeout`` (captured, the answer lost), ``lost`` (no answer, not captured).
    decline.do (``decline_mode`` ``ok`` / ``refuse`` / ``timeout``) declines an unpaid
    (``pending``) order with actionCode 4005 and refuses any other with errorCode 7.
    """

    def __init__(self) -> None:
        self.refund_calls: list[tuple[str, int, str]] = []
        self.reverse_calls: list[str] = []
        self.refunded: dict[str, int] = {}
        self.reversed: set[str] = set()
        self.refund_mode = "ok"
        self.reverse_mode = "ok"
        self._seen: set[str] = set()
        self.report_refunds = False
        self.refund_ids: dict[str, list[tuple[str, int]]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.payment_calls: list[str] = []
        self.status_calls: list[str] = []
        self.auth_ok = True
        self.before_answer: Callable[[str], None] | None = None
        self.before_charge: Callable[[str], None] | None = None
        self.two_phase = False
        self.deposit_mode = "ok"
        self.decline_mode = "ok"
        self.deposit_calls: list[str] = []
        self.decline_calls: list[str] = []

    def deposited(self) -> list[str]:
        return [n for n, o in self.orders.items() if o["orderStatus"] == 2]

    def charge(self, request: ChargeRequest) -> GatewayResult:
        order_number, binding_id, amount = request.order_number, request.binding_id, request.amount
        self.payment_calls.append(order_number)
        if self.before_charge is not None:
            self.before_charge(order_number)
        behaviour = binding_id.split("-")[0]
        if not self.auth_ok or behaviour == "auth":
            return JsonReply(200, error_body("5", "Access denied"))
        if behaviour == "down":
            return ConnectionFailed("connection refused")
        if order_number in self.orders:
            return JsonReply(
                200, error_body("10", "An order with this number has already been registered")
            )
        if behaviour == "http500":
            return HttpErrorReply(500, "<html>Internal Server Error</html>")
        if behaviour == "notfound":
            return JsonReply(200, error_body("2", "The binding is not found"))
        order_id = str(uuid.uuid4())
        status = {"insufficient": 6, "pending": 0}.get(behaviour, 1 if self.two_phase else 2)
        if behaviour == "stuck":  # the binding's first order stays unpaid; later ones approve
            first = not any(o.get("binding") == binding_id for o in self.orders.values())
            status = 0 if first else (1 if self.two_phase else 2)
        self.orders[order_number] = {
            "orderStatus": status,
            "orderId": order_id,
            "amount": amount,
            "actionCode": 116 if status == 6 else 0,
            "binding": binding_id,
        }
        if self.before_answer is not None:
            self.before_answer(order_number)
        if behaviour == "timeout":
            return ReadTimedOut("read timeout")
        if behaviour == "proxy502":  # the gateway charged; the proxy in front gave up
            return HttpErrorReply(502, "<html>Bad Gateway</html>")
        if status == 0:
            return JsonReply(200, {"success": True, "data": {"orderId": order_id}})
        if status == 6:
            return JsonReply(200, declined_body(order_number, amount, order_id, 116))
        body = paid_body(order_number, amount, order_id)
        if status == 1:
            body["orderStatus"]["orderStatus"] = 1
            body["orderStatus"]["paymentAmountInfo"] = {"paymentState": "APPROVED"}
        return JsonReply(200, body)

    def _by_id(self, order_id: str) -> dict[str, Any] | None:
        return next((o for o in self.orders.values() if o["orderId"] == order_id), None)

    def deposit(self, request: DepositRequest) -> GatewayResult:
        self.deposit_calls.append(request.order_id)
        order = self._by_id(request.order_id)
        if order is None:
            return JsonReply(200, {"errorCode": "6", "errorMessage": "Unregistered orderId"})
        if self.deposit_mode == "refuse":
            return JsonReply(200, {"errorCode": "7", "errorMessage": "Capture is not possible"})
        if self.deposit_mode == "lost":
            return ReadTimedOut("read timeout")
        if order["orderStatus"] != 1:
            return JsonReply(
                200, {"errorCode": "7", "errorMessage": "Payment must be in a correct state"}
            )
        order["orderStatus"] = 2
        if self.deposit_mode == "timeout":
            return ReadTimedOut("read timeout")
        return JsonReply(200, OK)

    def decline(self, request: DeclineRequest) -> GatewayResult:
        self.decline_calls.append(request.order_id or request.order_number or "")
        order = self.orders.get(request.order_number or "") or self._by_id(request.order_id or "")
        if order is None:
            return JsonReply(200, {"errorCode": "6", "errorMessage": "Unregistered orderId"})
        if self.decline_mode == "refuse" or order["orderStatus"] != 0:
            return JsonReply(200, {"errorCode": "7", "errorMessage": "Incorrect order state"})
        order["orderStatus"], order["actionCode"] = 6, 4005
        if self.decline_mode == "timeout":
            return ReadTimedOut("read timeout")
        return JsonReply(200, OK)

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult:
        self.status_calls.append(order_number or order_id or "")
        if not self.auth_ok:
            return JsonReply(200, {"errorCode": "5", "errorMessage": "Access denied"})
        order = self.orders.get(order_number or "")
        if order is None:
            return JsonReply(200, {"errorCode": "6", "errorMessage": "Unregistered orderId"})
        state = {2: "DEPOSITED", 0: "CREATED", 1: "APPROVED", 3: "REVERSED"}.get(
            order["orderStatus"], "DECLINED"
        )
        body: dict[str, Any] = {
            "errorCode": "0",
            "errorMessage": "Success",
            "orderNumber": order_number,
            "orderStatus": order["orderStatus"],
            "actionCode": order["actionCode"],
            "amount": order["amount"],
            "currency": "643",
            "paymentAmountInfo": {"paymentState": state},
            "attributes": [{"name": "mdOrder", "value": order["orderId"]}],
        }
        if self.report_refunds:
            self._show_refunds(body, order["orderId"])
        return JsonReply(200, body)

    def _show_refunds(self, body: dict[str, Any], order_id: str) -> None:
        done = self.refund_ids.get(order_id, [])
        body["refunds"] = [{"externalRefundId": ext, "amount": amount} for ext, amount in done]
        body["paymentAmountInfo"]["refundedAmount"] = sum(amount for _, amount in done)
        if order_id in self.reversed:
            body["orderStatus"], body["paymentAmountInfo"]["paymentState"] = 3, "REVERSED"
        elif done:
            body["orderStatus"], body["paymentAmountInfo"]["paymentState"] = 4, "REFUNDED"

    def refund(self, request: RefundRequest) -> GatewayResult:
        order_id, amount, external_refund_id = (
            request.order_id,
            request.amount,
            request.external_refund_id,
        )
        self.refund_calls.append((order_id, amount, external_refund_id))
        if self.refund_mode == "refuse":
            return JsonReply(200, {"errorCode": "7", "errorMessage": "Refund is not possible"})
        if self.refund_mode == "lost":
            return ReadTimedOut("read timeout")
        if self.refund_mode == "down":
            return ConnectionFailed("connection refused")
        if external_refund_id not in self._seen:
            self._seen.add(external_refund_id)
            self.refunded[order_id] = self.refunded.get(order_id, 0) + amount
            self.refund_ids.setdefault(order_id, []).append((external_refund_id, amount))
        if self.refund_mode == "timeout":
            return ReadTimedOut("read timeout")
        return JsonReply(200, OK)

    def reverse(self, request: ReverseRequest) -> GatewayResult:
        self.reverse_calls.append(request.order_id)
        if self.reverse_mode == "refuse":
            return JsonReply(200, {"errorCode": "7", "errorMessage": "Reversal is not possible"})
        if self.reverse_mode == "lost":
            return ReadTimedOut("read timeout")
        self.reversed.add(request.order_id)
        held = self._by_id(request.order_id)
        if held is not None and held["orderStatus"] == 1:
            held["orderStatus"] = 3  # a released hold
        if self.reverse_mode == "timeout":
            return ReadTimedOut("read timeout")
        return JsonReply(200, OK)

    def close(self) -> None:
        pass


class RecordingDispatcher:
    """A test double of the Dispatcher port: it only records the ids it was given."""

    def __init__(self) -> None:
        self.charges: list[int] = []
        self.reconciles: list[int] = []

    def charge(self, attempt_ids: Sequence[int]) -> None:
        self.charges.extend(attempt_ids)

    def reconcile(self, attempt_ids: Sequence[int]) -> None:
        self.reconciles.extend(attempt_ids)

    def backlog(self) -> int:
        return len(self.charges) + len(self.reconciles)
