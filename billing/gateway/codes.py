"""The gateway's codes as data: what each one means for a recurring charge.

Source: the gateway notes ``response-codes.md`` and the recurrentPayment.do /
getOrderStatusExtended.do references (the grouping is ours, not the gateways').
:mod:`billing.gateway.classify` reads these tables; nothing here does I/O.

Three kinds of code reach us:

* ``actionCode`` (processing result inside an order status) — :data:`ACTION_CODES`;
* ``error.code`` of recurrentPayment.do — :data:`PAYMENT_ERROR_CODES`, and for the
  ambiguous codes 1, 5 and 10 the wording of the message — :data:`ERROR_TEXT_RULES`;
* ``errorCode`` of getOrderStatusExtended.do — :data:`STATUS_ERROR_CODES`.

Anything not listed is *unknown* and is never read as paid nor as a decline the
customer would hear about.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from billing.domain.model import Category


@dataclass(frozen=True)
class Rule:
    """What one code (or one error text) means."""

    category: Category
    reason: str
    #: Hard decline that one gateway also reports during a brief outage: confirm once.
    confirm_before_decline: bool = False
    #: The gateway says it has no such order.
    order_not_found: bool = False


# -- actionCode -------------------------------------------------------------------------------

#: actionCode 0: the processing approved the operation. Not by itself proof of payment.
APPROVED_ACTION_CODES: Final = frozenset({0})

#: Outcome unknown: reconcile by order status before anything else.
RECONCILE_ACTION_CODES: Final = MappingProxyType(
    {
        -30001: "pending",
        -9000: "authorization_started",
        -100: "no_payment_attempt",
        1001: "outcome_unknown",
        151018: "processing_timeout",
        151019: "issuer_no_answer",
        2008: "outcome_unknown",
        433: "outcome_unknown",
        434: "outcome_unknown",
        # Payment-page session expired: not expected for recurrentPayment.do. In a final
        # DECLINED order it is a soft decline (see DECLINED_UNKNOWN_REASON).
        -2007: "session_expired",
    }
)

#: Technical / transient: nothing was charged, retry soon.
TRANSIENT_ACTION_CODES: Final = MappingProxyType(
    {
        103: "issuer_unreachable",
        907: "issuer_unreachable",
        910: "issuer_unreachable",
        909: "system_malfunction",
        15: "issuer_not_identified",
        2023: "processing_overloaded",
        -3003: "technical_error",
    }
)

#: Soft decline: dunning retries.
SOFT_DECLINE_ACTION_CODES: Final = MappingProxyType(
    {
        116: "insufficient_funds",
        121: "amount_limit_exceeded",
        123: "count_limit_exceeded",
        903: "issuer_limit_exceeded",
        -20010: "issuer_limit_exceeded",
        209: "card_limit_exceeded",
        5: "refer_to_issuer",  # few retries
        107: "refer_to_issuer",  # few retries
    }
)

#: Hard decline: the binding is unusable, ask the customer for a new card.
HARD_DECLINE_ACTION_CODES: Final = MappingProxyType(
    {
        101: "expired_card",
        111: "invalid_card_data",
        125: "invalid_card_data",
        71015: "invalid_card_data",
        53: "no_such_card",
        100: "restricted_card",
        104: "restricted_card",
        118: "not_permitted",
        120: "not_permitted",
        902: "not_permitted",
        1: "identity_confirmation_required",
        106: "pin_tries_exceeded",
    }
)

#: 3-D Secure results: should not occur for a merchant-initiated charge; if they do,
#: the customer must pay once with their card (a hard decline).
THREE_DS_ACTION_CODES: Final = frozenset(
    {-2005, -2006, -2010, -2011, *range(-2020, -2014), *range(-2025, -2021)}
)

#: Fraud / lost card / blacklisted: never retry.
DO_NOT_RETRY_ACTION_CODES: Final = MappingProxyType(
    {
        208: "lost_card",
        -2000: "card_blacklisted",
        -2001: "blacklisted",
        119: "illegal_transaction",
        999: "fraud_suspected",
    }
)

#: Merchant configuration: alert operators, no retry (the customer did nothing wrong).
MERCHANT_CONFIG_ACTION_CODES: Final = MappingProxyType(
    {
        109: "invalid_merchant",
        2002: "merchant_config",
        2003: "merchant_config",
        2004: "merchant_config",
        2006: "merchant_config",
        2014: "merchant_config",
        2015: "merchant_config",
        2016: "merchant_config",
        -2012: "merchant_config",
        341014: "merchant_config",
        2022: "merchant_config",
        914: "merchant_config",
        2009: "merchant_config",
        -2002: "merchant_limit_exceeded",
    }
)

#: Refused for this one order, not for the merchant: the subscription is held.
REQUEST_REJECTED_ACTION_CODES: Final = MappingProxyType(
    {
        110: "invalid_amount",
        4005: "declined_by_merchant",
    }
)

#: Every group with its category, in one place (the tests check they do not overlap).
ACTION_CODE_GROUPS: Final = MappingProxyType(
    {
        Category.UNKNOWN: RECONCILE_ACTION_CODES,
        Category.TRANSIENT: TRANSIENT_ACTION_CODES,
        Category.SOFT_DECLINE: SOFT_DECLINE_ACTION_CODES,
        Category.HARD_DECLINE: MappingProxyType(
            {
                **HARD_DECLINE_ACTION_CODES,
                **dict.fromkeys(sorted(THREE_DS_ACTION_CODES), "3ds_required"),
            }
        ),
        Category.DO_NOT_RETRY: DO_NOT_RETRY_ACTION_CODES,
        Category.MERCHANT_CONFIG: MERCHANT_CONFIG_ACTION_CODES,
        Category.REQUEST_REJECTED: REQUEST_REJECTED_ACTION_CODES,
    }
)

#: actionCode → rule, for an order the gateway DECLINED. actionCode 0 is not here:
#: "approved" in a declined order is a contradiction, never a payment.
ACTION_CODES: Final = MappingProxyType(
    {
        code: Rule(category, reason)
        for category, group in ACTION_CODE_GROUPS.items()
        for code, reason in group.items()
    }
)

#: A final decline (orderStatus 6) with a missing, zero, unlisted or "reconcile" actionCode:
#: nothing was taken and the order will not change, so it is retried per the schedule.
DECLINED_UNKNOWN_REASON: Final = Rule(Category.SOFT_DECLINE, "declined_unknown_reason")

# -- error codes of recurrentPayment.do -------------------------------------------------------

#: Codes whose meaning is clear from the code alone.
PAYMENT_ERROR_CODES: Final = MappingProxyType(
    {
        # Usually the binding is gone; one gateway also says so while its card storage
        # is briefly down: confirm once later before asking for a new card.
        "2": Rule(Category.HARD_DECLINE, "binding_not_found", confirm_before_decline=True),
        "4": Rule(Category.MERCHANT_CONFIG, "missing_parameter"),
        "6": Rule(Category.UNKNOWN, "order_not_found", order_not_found=True),
        "7": Rule(Category.TRANSIENT, "system_error"),
    }
)

#: Codes that mean different things: the error text decides (:data:`ERROR_TEXT_RULES`).
AMBIGUOUS_PAYMENT_ERROR_CODES: Final = frozenset({"1", "5", "10"})

#: For an ambiguous code: lower-cased substrings of description/message → rule.
#: Checked in order; the first match wins. The order puts the safest readings first:
#: "the order may already exist" before "our configuration" before any decline.
ERROR_TEXT_RULES: Final[tuple[tuple[tuple[str, ...], Rule], ...]] = (
    (
        (
            "already registered",
            "already been registered",
            "already processed",
            "already been processed",
            "duplicate order",
        ),
        Rule(Category.UNKNOWN, "duplicate_order"),
    ),
    (("wrong order number",), Rule(Category.UNKNOWN, "wrong_order_number")),
    (
        (
            "incorrect login",
            "incorrect password",
            "authentication",
            "access denied",
            "must change the password",
        ),
        Rule(Category.MERCHANT_CONFIG, "auth_error"),
    ),
    # About this one request's data: the subscription is held, nobody else is paused.
    (("invalid amount",), Rule(Category.REQUEST_REJECTED, "invalid_amount")),
    (("incorrect value of [currency",), Rule(Category.REQUEST_REJECTED, "invalid_currency")),
    (("incorrect value of [amount",), Rule(Category.REQUEST_REJECTED, "invalid_amount")),
    (("incorrect value of [language",), Rule(Category.MERCHANT_CONFIG, "invalid_language")),
    (
        ("incorrect value of [orderdescription",),
        Rule(Category.REQUEST_REJECTED, "invalid_description"),
    ),
    (
        ("incorrect value of [ordernumber",),
        Rule(Category.MERCHANT_CONFIG, "invalid_order_number"),
    ),
    (("incorrect value of",), Rule(Category.MERCHANT_CONFIG, "invalid_parameter")),
    (("is empty",), Rule(Category.MERCHANT_CONFIG, "missing_parameter")),
    (("not sufficient", "insufficient"), Rule(Category.SOFT_DECLINE, "insufficient_funds")),
    (("binding is disabled",), Rule(Category.HARD_DECLINE, "binding_disabled")),
)

#: An ambiguous code with a text we do not recognise: the order may exist, reconcile.
UNRECOGNISED_ERROR_TEXT: Final = Rule(Category.UNKNOWN, "unrecognised_error_text")
#: An error code not in any table.
UNKNOWN_ERROR_CODE: Final = Rule(Category.UNKNOWN, "unknown_error_code")

# -- error codes of getOrderStatusExtended.do -------------------------------------------------

#: errorCode of a status query. These describe the *query*: TRANSIENT and
#: MERCHANT_CONFIG here say nothing about whether the order was paid.
STATUS_ERROR_CODES: Final = MappingProxyType(
    {
        "4": Rule(Category.MERCHANT_CONFIG, "missing_parameter"),
        # "Access denied" / "The user must change the password" / "[orderId] is empty".
        "5": Rule(Category.MERCHANT_CONFIG, "access_denied"),
        "6": Rule(Category.UNKNOWN, "order_not_found", order_not_found=True),
        "7": Rule(Category.TRANSIENT, "system_error"),
    }
)

#: Lower-cased texts that say "no such order" under a non-zero errorCode other than 6.
#: Deliberately about *orders*: "user not found" is an authentication problem.
ORDER_NOT_FOUND_TEXTS: Final = (
    "order not found",
    "order is not found",
    "orderid not found",
    "order was not found",
    "unregistered orderid",
    "unregistered order",
    "no such order",
    "order does not exist",
    "order not exist",
)
ORDER_NOT_FOUND: Final = Rule(Category.UNKNOWN, "order_not_found", order_not_found=True)

# -- order status -----------------------------------------------------------------------------

#: Families an order can be in, from ``orderStatus`` or ``state``/``paymentState``.
PAID = "paid"
HELD = "held"
PENDING = "pending"
REVERSED = "reversed"
REFUNDED = "refunded"
DECLINED = "declined"

#: orderStatus (getOrderStatusExtended.do) → family. -1 is all2pay's PREREGISTERED.
ORDER_STATUS_FAMILIES: Final = MappingProxyType(
    {
        -1: PENDING,
        0: PENDING,
        1: HELD,
        2: PAID,
        3: REVERSED,
        4: REFUNDED,
        5: PENDING,
        6: DECLINED,
    }
)

#: state / paymentState (upper-cased) → family.
STATE_FAMILIES: Final = MappingProxyType(
    {
        "PREREGISTERED": PENDING,
        "CREATED": PENDING,
        "PENDING": PENDING,
        "APPROVED": HELD,
        "DEPOSITED": PAID,
        "DECLINED": DECLINED,
        "REVERSED": REVERSED,
        "REFUNDED": REFUNDED,
        "REFUND": REFUNDED,
    }
)
