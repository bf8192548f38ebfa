"""What a gateway answer means for the charge: pure functions, no I/O, never raising.

The money rules
---------------
* ``success: true`` and ``errorCode "0"`` mean "the request was processed", not "paid".
* PAID only when the order status says the money was taken: ``orderStatus`` 2 or
  ``paymentState``/``state`` DEPOSITED — and every such signal in the answer agrees
  (``orderStatus`` 2 next to a DECLINED state is UNKNOWN), the ``actionCode`` is absent
  or 0, no error code is set, ``success`` is not ``false`` and the HTTP status is 2xx.
* ``success: true`` without an order status → UNKNOWN (reconcile by status).
* A declined order (``orderStatus`` 6 / DECLINED) is classified by its ``actionCode``
  (:data:`billing.gateway.codes.ACTION_CODES`); a final decline whose code is missing, 0,
  unlisted or a "reconcile" code is a SOFT_DECLINE ``declined_unknown_reason`` (never
  polled for days: the order is final and no money was taken).
* A recurrentPayment.do answer that carries a non-zero error code *and* mentions an
  order is settled by that order's status: by the answer's own order block when it says
  the order is final and not paid (declined: its actionCode decides), otherwise UNKNOWN
  ``error_with_order`` — the worker queries the status before any new orderNumber is
  used (the order may even be DEPOSITED).
* Anything unknown (error code, action code, text of the ambiguous codes 1/5/10,
  order status, shape) is never PAID and never a decline the customer hears about:
  UNKNOWN when the order may exist (the worker reconciles), TRANSIENT only when the
  request certainly did not reach the gateway.

Transport results of recurrentPayment.do
----------------------------------------
* :class:`ConnectionFailed` → TRANSIENT (the request certainly never left).
* :class:`ReadTimedOut`, :class:`ConnectionLost` → UNKNOWN (it may have been charged).
  The ``request_sent`` flag of the result decides, so a result built with
  ``request_sent=True`` is UNKNOWN whatever its type.
* :class:`HttpErrorReply` 5xx → TRANSIENT ``http_5xx`` and :class:`NotJsonReply` →
  TRANSIENT ``not_json``, as the product spec says ("transient: errorCode 7, HTTP 5xx,
  connection refused"). Such a page could in theory hide a charge that went through
  behind a proxy; that is acceptable only because the worker reconciles the attempt's
  orderNumber by status before any re-send.
* HTTP 408/425/429 → TRANSIENT ``http_retryable``; other 4xx and 3xx without a JSON
  body → MERCHANT_CONFIG (wrong URL, method or credentials at the front door);
  any other status → UNKNOWN.

Status queries (getOrderStatusExtended.do)
------------------------------------------
:func:`classify_status` describes the *order* when the gateway told us about it, and
the *query* otherwise: TRANSIENT (errorCode 7, 5xx, any transport failure — a status
query is read-only and safe to repeat) and MERCHANT_CONFIG (errorCode 5, 4xx) say
nothing about the order. ``order_not_found`` is set only on an explicit answer
(errorCode 6, or a "no such order" text), never inferred from missing fields.
A declined order whose actionCode is transient or merchant-configuration also comes
back TRANSIENT / MERCHANT_CONFIG, with ``order_status`` 6 set: callers that need to
tell "query failed" from "order declined" look at ``order_status``.
Held (1) → UNKNOWN ``held``; registered/pending (0, 5, -1, CREATED, PENDING,
PREREGISTERED) → UNKNOWN ``pending``; canceled (3, REVERSED) and refunded (4,
REFUNDED) → UNKNOWN ``reversed``/``refunded``: money moved and came back, an
operator looks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from pydantic import ValidationError

from billing.domain.model import Category, Outcome
from billing.gateway import codes
from billing.gateway.codes import Rule
from billing.gateway.models import (
    ErrorBlock,
    OrderStatusBlock,
    OrderStatusResponse,
    RecurrentPaymentResponse,
)
from billing.gateway.results import (
    RATE_LIMITED,
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)

__all__ = ["MESSAGE_LIMIT", "classify_payment", "classify_status"]

#: Longest gateway text kept in :attr:`Outcome.message`.
MESSAGE_LIMIT: Final = 300
_RETRYABLE_HTTP: Final = frozenset({408, 425, 429})


def classify_payment(result: GatewayResult) -> Outcome:
    """Classify the result of one recurrentPayment.do call (see the module docstring)."""
    if isinstance(result, JsonReply):
        return _payment_reply(result)
    return _not_json(result, query=False)


def classify_status(result: GatewayResult) -> Outcome:
    """Classify the result of one getOrderStatusExtended.do call (reconciliation)."""
    if isinstance(result, JsonReply):
        return _status_reply(result)
    return _not_json(result, query=True)


# -- results without a JSON object --------------------------------------------------------------


def _not_json(result: object, *, query: bool) -> Outcome:
    if isinstance(result, ConnectionFailed | ReadTimedOut | ConnectionLost):
        if isinstance(result, ConnectionFailed):
            reason = RATE_LIMITED if result.reason == RATE_LIMITED else "connect_failed"
        elif isinstance(result, ReadTimedOut):
            reason = "read_timeout"
        else:
            reason = "connection_lost"
        detail = result.detail if isinstance(result.detail, str) else ""
        # A status query is read-only: failing it only means "ask again".
        sent = result.request_sent is not False
        category = Category.UNKNOWN if sent and not query else Category.TRANSIENT
        return Outcome(category, reason, message=_clip(detail))
    if isinstance(result, HttpErrorReply):
        return _http_error(_int_or_none(result.http_status), result.snippet, query=query)
    if isinstance(result, NotJsonReply):
        return Outcome(
            Category.TRANSIENT,
            "not_json",
            message=_clip(result.snippet),
            http_status=_int_or_none(result.http_status),
        )
    return Outcome(Category.UNKNOWN, "unrecognised_result")


def _http_error(status: int | None, snippet: object, *, query: bool) -> Outcome:
    message = _clip(snippet)
    if status is None:
        category, reason = Category.UNKNOWN, "http_unexpected"
    elif 500 <= status <= 599:
        category, reason = Category.TRANSIENT, "http_5xx"
    elif status in _RETRYABLE_HTTP:
        category, reason = Category.TRANSIENT, "http_retryable"
    elif 400 <= status <= 499:
        category, reason = Category.MERCHANT_CONFIG, "http_4xx"
    elif 300 <= status <= 399:
        category, reason = Category.MERCHANT_CONFIG, "http_redirect"
    else:
        category, reason = Category.UNKNOWN, "http_unexpected"
    return Outcome(category, reason, message=message, http_status=status)


# -- recurrentPayment.do ------------------------------------------------------------------------


def _payment_reply(reply: JsonReply) -> Outcome:
    http_status = _int_or_none(reply.http_status)
    if not isinstance(reply.body, dict):
        return Outcome(Category.TRANSIENT, "not_json", http_status=http_status)
    try:
        response = RecurrentPaymentResponse.model_validate(reply.body)
    except ValidationError:  # not reachable for a dict (see models); kept as a guard
        return Outcome(Category.UNKNOWN, "unreadable_reply", http_status=http_status)
    order_id = response.order_id
    error = response.error
    code = error.code if error is not None else None

    block = response.order_status
    mentions_order = bool(order_id) or (block is not None and _has_order_facts(block))
    if error is not None and code is not None and code != "0":
        outcome = _from_rule(
            _payment_error_rule(code, error),
            message=error.description or error.message,
            error_code=code,
            order_id=order_id,
            block=block,
            http_status=http_status,
        )
        if block is not None and _has_order_facts(block) and block.error_code in (None, "0"):
            # The answer carries the order's own status: a final one (declined...) decides.
            by_order = _order_outcome(block, http_status=http_status, order_id=order_id)
            if by_order.category not in (Category.PAID, Category.UNKNOWN):
                return replace(by_order, error_code=code)
        return _order_decides(outcome) if mentions_order else outcome

    if block is not None and (_has_order_facts(block) or block.error_code not in (None, "0")):
        outcome = _order_outcome(block, http_status=http_status, order_id=order_id)
        if outcome.category is Category.PAID and response.success is False:
            return _replace_category(outcome, Category.UNKNOWN, "contradictory_status")
        if mentions_order and block.error_code not in (None, "0"):
            return _order_decides(outcome)
        return outcome

    message = (error.description or error.message) if error is not None else None
    if response.success is True or code == "0":
        reason = "no_order_status"
    elif response.success is False:
        reason = "failed_without_code"
    else:
        reason = "unrecognised_reply"
    return Outcome(
        Category.UNKNOWN,
        reason,
        message=_clip(message),
        error_code=code,
        order_id=order_id,
        http_status=http_status,
    )


def _order_decides(outcome: Outcome) -> Outcome:
    """An error code next to an order (an ``orderId`` or an order block): the order may
    exist, maybe even DEPOSITED, so its status — not the error code — settles the charge
    before any new orderNumber is used."""
    if outcome.category is Category.UNKNOWN:
        return outcome
    return _replace_category(outcome, Category.UNKNOWN, "error_with_order")


def _payment_error_rule(code: str, error: ErrorBlock) -> Rule:
    rule = codes.PAYMENT_ERROR_CODES.get(code)
    if rule is not None:
        return rule
    if code in codes.AMBIGUOUS_PAYMENT_ERROR_CODES:
        return _text_rule(error.text) or codes.UNRECOGNISED_ERROR_TEXT
    return codes.UNKNOWN_ERROR_CODE


def _text_rule(text: str) -> Rule | None:
    lowered = " ".join(text.lower().split())
    for needles, rule in codes.ERROR_TEXT_RULES:
        if any(needle in lowered for needle in needles):
            return rule
    return None


# -- getOrderStatusExtended.do ------------------------------------------------------------------


def _status_reply(reply: JsonReply) -> Outcome:
    http_status = _int_or_none(reply.http_status)
    if not isinstance(reply.body, dict):
        return Outcome(Category.TRANSIENT, "not_json", http_status=http_status)
    try:
        response = OrderStatusResponse.model_validate(reply.body)
    except ValidationError:  # not reachable for a dict (see models); kept as a guard
        return Outcome(Category.UNKNOWN, "unreadable_reply", http_status=http_status)
    return _order_outcome(response, http_status=http_status, order_id=response.order_id)


def _status_error_rule(code: str, text: str) -> Rule:
    if code == "6":
        return codes.ORDER_NOT_FOUND
    lowered = " ".join(text.lower().split())
    if any(needle in lowered for needle in codes.ORDER_NOT_FOUND_TEXTS):
        return codes.ORDER_NOT_FOUND
    rule = codes.STATUS_ERROR_CODES.get(code)
    if rule is None:
        return codes.UNKNOWN_ERROR_CODE
    if rule.category is Category.MERCHANT_CONFIG:
        # A more precise reason when the text gives one ("auth_error", "missing_parameter").
        refined = _text_rule(text)
        if refined is not None and refined.category is Category.MERCHANT_CONFIG:
            return refined
    return rule


# -- the order block, shared by both methods ----------------------------------------------------


def _has_order_facts(block: OrderStatusBlock) -> bool:
    return bool(block.order_statuses or block.states or block.action_code is not None)


def _families(block: OrderStatusBlock) -> set[str]:
    """The order's state as said by every signal in the block ("?" for an unknown one)."""
    found = {codes.ORDER_STATUS_FAMILIES.get(status, "?") for status in block.order_statuses}
    found.update(codes.STATE_FAMILIES.get(state, "?") for state in block.states)
    return found


def _order_outcome(
    block: OrderStatusBlock, *, http_status: int | None, order_id: str | None
) -> Outcome:
    code = block.error_code
    if code is not None and code != "0":
        return _from_rule(
            _status_error_rule(code, block.error_message or ""),
            message=block.error_message or block.action_code_description,
            error_code=code,
            order_id=order_id,
            block=block,
            http_status=http_status,
        )

    families = _families(block)
    action = block.action_code
    rule: Rule
    if not families:
        rule = Rule(Category.UNKNOWN, "no_order_status")
    elif len(families) > 1:
        rule = Rule(Category.UNKNOWN, "contradictory_status")
    else:
        (family,) = families
        rule = _family_rule(family, action, http_status)
    return _from_rule(
        rule,
        message=block.description,
        error_code=code,
        order_id=order_id,
        block=block,
        http_status=http_status,
    )


def _family_rule(family: str, action: int | None, http_status: int | None) -> Rule:
    if family == codes.PAID:
        if action is not None and action not in codes.APPROVED_ACTION_CODES:
            return Rule(Category.UNKNOWN, "contradictory_status")
        if http_status is None or not 200 <= http_status <= 299:
            return Rule(Category.UNKNOWN, "contradictory_status")
        return Rule(Category.PAID, "deposited")
    if family == codes.DECLINED:
        rule = codes.ACTION_CODES.get(action) if action is not None else None
        if rule is None or rule.category is Category.UNKNOWN:
            # A final decline whose reason we cannot read (no code, 0, an unlisted code,
            # a "reconcile" code such as -2007 or -100): no money was taken and asking
            # again gives the same answer, so it is retried on the dunning schedule.
            return codes.DECLINED_UNKNOWN_REASON
        return rule
    if family in (codes.HELD, codes.PENDING, codes.REVERSED, codes.REFUNDED):
        return Rule(Category.UNKNOWN, family)
    return Rule(Category.UNKNOWN, "unknown_order_status")


# -- helpers ------------------------------------------------------------------------------------


def _from_rule(
    rule: Rule,
    *,
    message: str | None,
    error_code: str | None,
    order_id: str | None,
    block: OrderStatusBlock | None,
    http_status: int | None,
) -> Outcome:
    return Outcome(
        category=rule.category,
        reason=rule.reason,
        message=_clip(message),
        error_code=error_code,
        action_code=block.action_code if block is not None else None,
        order_id=order_id or None,
        order_status=block.order_status if block is not None else None,
        http_status=http_status,
        order_not_found=rule.order_not_found,
        confirm_before_decline=rule.confirm_before_decline,
    )


def _replace_category(outcome: Outcome, category: Category, reason: str) -> Outcome:
    return replace(outcome, category=category, reason=reason)


def _clip(text: object) -> str:
    if not isinstance(text, str):
        return ""
    return text.strip()[:MESSAGE_LIMIT]


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
