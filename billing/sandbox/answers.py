"""How the sandbox answers: the JSON bodies of recurrentPayment.do and
getOrderStatusExtended.do, built from an order as the real gateway shows it. It decides only
the shape of an answer, never what happens to an order.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse

from billing.sandbox.behaviours import (
    Plan,
)
from billing.sandbox.ledger import Order, OrderState
from billing.sandbox.requests import digits


def now_ms() -> int:
    return int(time.time() * 1000)


def error_body(code: str, description: str, message: str | None = None) -> JSONResponse:
    error = {"code": code, "description": description, "message": message or description}
    return JSONResponse({"error": error, "success": False})


def card_info(order: Order) -> dict[str, Any]:
    pan = "411111**" + digits(order.binding_id, 4)
    expired = order.action_code == 101
    info: dict[str, Any] = {
        "expiration": "202001" if expired else "203012",
        "cardholderName": "SANDBOX CARDHOLDER",
        "paymentSystem": "VISA",
        "pan": pan,
        "maskedPan": pan,
    }
    if order.charged:
        info["approvalCode"] = digits(order.order_id, 6)
    return info


def order_block(order: Order) -> dict[str, Any]:
    """The order-status fields shared by both endpoints' answers."""
    block: dict[str, Any] = {
        "errorCode": "0",
        "orderNumber": order.order_number,
        "orderStatus": order.order_status,
        "actionCode": order.action_code,
        "actionCodeDescription": order.action_code_description,
        "amount": order.amount,
        "currency": order.currency,
        "date": order.created_ms,
        "orderDescription": order.description,
        "merchantOrderParams": [{"name": k, "value": v} for k, v in order.merchant_params],
        "attributes": [],
        "cardAuthInfo": card_info(order),
        "terminalId": "11111111",
        "paymentAmountInfo": {
            "paymentState": order.state.value,
            "approvedAmount": order.amount
            if order.charged or order.state is OrderState.APPROVED
            else 0,
            "depositedAmount": order.deposited_amount,
            "refundedAmount": order.refunded_amount,
        },
        "bankInfo": {"bankCountryName": "<UNKNOWN>"},
        "chargeback": False,
    }
    if order.state is not OrderState.CREATED:
        block["authDateTime"] = order.deposited_ms or order.created_ms
        block["authRefNum"] = digits(order.order_id + "ref", 12)
    if order.charged:
        block["depositedDate"] = order.deposited_ms
        block["operations"] = [
            {"amount": order.amount, "cardHolder": "SANDBOX CARDHOLDER", "authCode": "123456"}
        ]
    return block


def charge_body(plan: Plan, order: Order) -> dict[str, Any]:
    declined = order.state is OrderState.DECLINED and not plan.success_flag_on_decline
    body: dict[str, Any] = {"success": not declined, "data": {"orderId": order.order_id}}
    if declined:
        body["error"] = {
            "code": plan.error_code,
            "description": plan.message,
            "message": plan.message,
        }
    body["orderStatus"] = order_block(order)
    return body


def status_body(order: Order) -> dict[str, Any]:
    body = order_block(order)
    body["errorMessage"] = "Success"
    body["attributes"] = [{"name": "mdOrder", "value": order.order_id}]
    body["bindingInfo"] = {"clientId": order.client_id, "bindingId": order.binding_id}
    body["paymentWay"] = "CARD_BINDING"
    body["refunds"] = [r.to_json() for r in order.refunds]
    return body
