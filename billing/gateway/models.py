"""Response models, tolerant of what RBS-family gateways really send.

* codes arrive as strings or ints: ``errorCode`` becomes ``str | None`` ("05" → "5"),
  ``actionCode``/``orderStatus``/amounts become ``int | None``;
* ``state``/``paymentState`` are upper-cased; ``success`` accepts "true"/"false";
* blocks may be missing, ``null`` or of the wrong type: they read as ``None``;
* extra fields are ignored.

A value that cannot be read (a list where a code belongs, a float status, a
non-ASCII state) reads as absent. Absent data is never read as "paid" by
:mod:`billing.gateway.classify`, so tolerance here cannot invent a payment.
For any ``dict`` input, validation does not fail; callers still guard against
:class:`pydantic.ValidationError` for anything else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only; short enough for int()
_INT_LIMIT = 10**18


def _to_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -_INT_LIMIT < value < _INT_LIMIT else None
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
    return None


def _to_code(value: object) -> str | None:
    """An error code as a canonical string: 0 / "0" / "00" → "0"; other text kept."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if -_INT_LIMIT < value < _INT_LIMIT else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _INTEGER.fullmatch(text):
            return str(int(text))
        return text[:64]
    return None


def _to_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and -_INT_LIMIT < value < _INT_LIMIT:
        return str(value)
    return None


def _to_state(value: object) -> str | None:
    if isinstance(value, str) and value.isascii():
        text = value.strip().upper()
        return text or None
    return None


def _to_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "true":
            return True
        if text == "false":
            return False
    return None


def _to_block(value: object) -> object:
    return value if isinstance(value, dict) else None


def _to_dicts(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, dict)]
    return []


OptInt = Annotated[int | None, BeforeValidator(_to_int)]
OptCode = Annotated[str | None, BeforeValidator(_to_code)]
OptText = Annotated[str | None, BeforeValidator(_to_text)]
OptState = Annotated[str | None, BeforeValidator(_to_state)]
OptBool = Annotated[bool | None, BeforeValidator(_to_bool)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


class PaymentAmountInfo(_Model):
    payment_state: OptState = Field(default=None, alias="paymentState")
    approved_amount: OptInt = Field(default=None, alias="approvedAmount")
    deposited_amount: OptInt = Field(default=None, alias="depositedAmount")
    refunded_amount: OptInt = Field(default=None, alias="refundedAmount")


class Attribute(_Model):
    name: OptText = None
    value: OptText = None


class OrderStatusBlock(_Model):
    """The order fields of getOrderStatusExtended.do; also recurrentPayment.do's
    ``orderStatus`` block.

    all2pay's shape (top-level ``state`` plus an ``orderStatusResultModel`` block)
    is folded into the same fields: the nested block's values fill in, top-level
    values win, and the nested block is kept as :attr:`result_model` so that a
    top-level value contradicting a nested one can be noticed.
    """

    error_code: OptCode = Field(default=None, alias="errorCode")
    error_message: OptText = Field(default=None, alias="errorMessage")
    order_number: OptText = Field(default=None, alias="orderNumber")
    order_status: OptInt = Field(default=None, alias="orderStatus")
    action_code: OptInt = Field(default=None, alias="actionCode")
    action_code_description: OptText = Field(default=None, alias="actionCodeDescription")
    amount: OptInt = None
    currency: OptText = None
    deposited_amount: OptInt = Field(default=None, alias="depositedAmount")
    payment_amount_info: Annotated[PaymentAmountInfo | None, BeforeValidator(_to_block)] = Field(
        default=None, alias="paymentAmountInfo"
    )
    attributes: Annotated[tuple[Attribute, ...], BeforeValidator(_to_dicts)] = ()
    raw_order_id: OptText = Field(default=None, alias="orderId")
    #: all2pay: PREREGISTERED, CREATED, APPROVED, DEPOSITED, DECLINED, PENDING, ...
    state: OptState = None
    result_model: Annotated[OrderStatusBlock | None, BeforeValidator(_to_block)] = Field(
        default=None, alias="orderStatusResultModel"
    )

    @model_validator(mode="before")
    @classmethod
    def _fold_result_model(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nested = data.get("orderStatusResultModel")
            if isinstance(nested, dict):
                # One level only: a nested block's own nested block is ignored.
                inner = {k: v for k, v in nested.items() if k != "orderStatusResultModel"}
                merged = dict(inner)
                merged.update((k, v) for k, v in data.items() if v is not None)
                merged["orderStatusResultModel"] = inner
                return merged
        return data

    @property
    def payment_state(self) -> str | None:
        info = self.payment_amount_info
        return info.payment_state if info is not None else None

    @property
    def states(self) -> tuple[str, ...]:
        """Every ``state``/``paymentState`` given, including the nested block's."""
        found = [s for s in (self.state, self.payment_state) if s is not None]
        if self.result_model is not None:
            found.extend(self.result_model.states)
        return tuple(found)

    @property
    def order_statuses(self) -> tuple[int, ...]:
        """Every ``orderStatus`` given, including the nested block's."""
        found = [self.order_status] if self.order_status is not None else []
        if self.result_model is not None:
            found.extend(self.result_model.order_statuses)
        return tuple(found)

    @property
    def order_id(self) -> str | None:
        """The gateway's order id: ``orderId`` or the ``mdOrder`` attribute."""
        if self.raw_order_id:
            return self.raw_order_id
        for attribute in self.attributes:
            if attribute.name == "mdOrder" and attribute.value:
                return attribute.value
        if self.result_model is not None:
            return self.result_model.order_id
        return None

    @property
    def description(self) -> str | None:
        """The gateway's own words about the result."""
        return self.action_code_description or self.error_message or None


class OrderStatusResponse(OrderStatusBlock):
    """The answer of getOrderStatusExtended.do (RBS and all2pay shapes)."""


class PaymentData(_Model):
    order_id: OptText = Field(default=None, alias="orderId")


class ErrorBlock(_Model):
    code: OptCode = None
    description: OptText = None
    message: OptText = None

    @property
    def text(self) -> str:
        """Description and message together, for matching."""
        return " ".join(t for t in (self.description, self.message) if t)


#: Top-level keys that show a recurrentPayment.do answer carries its order status flat.
_FLAT_ORDER_KEYS = frozenset({"actionCode", "paymentAmountInfo", "state", "orderStatusResultModel"})


class RecurrentPaymentResponse(_Model):
    """The answer of recurrentPayment.do.

    Also read: a top-level ``errorCode``/``errorMessage`` pair instead of the
    ``error`` block, and an order status given flat at the top level (``orderStatus``
    as a number next to ``actionCode``...) instead of in the ``orderStatus`` block.
    """

    success: OptBool = None
    data: Annotated[PaymentData | None, BeforeValidator(_to_block)] = None
    error: Annotated[ErrorBlock | None, BeforeValidator(_to_block)] = None
    order_status: Annotated[OrderStatusBlock | None, BeforeValidator(_to_block)] = Field(
        default=None, alias="orderStatus"
    )

    @model_validator(mode="before")
    @classmethod
    def _normalise_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        if not isinstance(data.get("error"), dict) and (
            "errorCode" in data or "errorMessage" in data
        ):
            out["error"] = {
                "code": data.get("errorCode"),
                "description": data.get("errorMessage"),
            }
        block = data.get("orderStatus")
        if not isinstance(block, dict) and (
            block is not None or not _FLAT_ORDER_KEYS.isdisjoint(data)
        ):
            out["orderStatus"] = {
                k: v for k, v in data.items() if k not in ("success", "data", "error")
            }
        return out

    @property
    def order_id(self) -> str | None:
        if self.data is not None and self.data.order_id:
            return self.data.order_id
        if self.order_status is not None:
            return self.order_status.order_id
        return None


class ActionResponse(_Model):
    """The answer of refund.do / reverse.do / deposit.do / decline.do."""

    error_code: OptCode = Field(default=None, alias="errorCode")
    error_message: OptText = Field(default=None, alias="errorMessage")
