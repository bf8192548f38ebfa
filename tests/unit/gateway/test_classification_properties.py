"""Properties of classify_payment / classify_status over arbitrary gateway answers.

* they never raise and always return one Category;
* PAID only for a 2xx JSON object that says so: ``orderStatus`` 2 (int or digit string)
  or ``paymentState``/``state`` DEPOSITED where the parser looks — and, for bodies built
  from the known keys, no other order-state signal there contradicts it.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.domain.model import Category, Outcome
from billing.gateway.classify import MESSAGE_LIMIT, classify_payment, classify_status
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KNOWN_KEYS = [
    "success",
    "data",
    "orderId",
    "error",
    "code",
    "description",
    "message",
    "errorCode",
    "errorMessage",
    "orderNumber",
    "orderStatus",
    "actionCode",
    "actionCodeDescription",
    "amount",
    "currency",
    "paymentAmountInfo",
    "paymentState",
    "approvedAmount",
    "depositedAmount",
    "refundedAmount",
    "attributes",
    "name",
    "value",
    "state",
    "orderStatusResultModel",
]

INTERESTING = st.sampled_from(
    [
        None, True, False, 0, 1, 2, 3, 4, 5, 6, 7, 10, -1, 116, 101, 208, 999, -2007, 4005,
        "0", "1", "2", " 2 ", "02", "+2", "2.0", 2.0, "6", "7", "10", "5", "116", "-2007",
        "\uff12", "", "true", "false", "TRUE",
        "DEPOSITED", "deposited", " Deposited ", "DECLINED", "APPROVED", "REFUNDED", "REFUND",
        "REVERSED", "CREATED", "PENDING", "PREREGISTERED", "DEPOS\u0131TED",
        "Insufficient funds", "already registered", "Access denied", "binding is disabled",
        "Order not found", "System error", "mdOrder",
    ]
)  # fmt: skip

SCALARS = (
    INTERESTING
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)

JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)

BLOCK = st.fixed_dictionaries(
    {},
    optional={
        "errorCode": INTERESTING | JSONISH,
        "errorMessage": INTERESTING,
        "orderStatus": INTERESTING | JSONISH,
        "actionCode": INTERESTING | JSONISH,
        "actionCodeDescription": INTERESTING,
        "paymentAmountInfo": st.fixed_dictionaries(
            {}, optional={"paymentState": INTERESTING, "depositedAmount": INTERESTING}
        )
        | JSONISH,
        "state": INTERESTING,
        "orderId": INTERESTING,
        "attributes": st.lists(
            st.fixed_dictionaries({"name": INTERESTING, "value": INTERESTING}) | JSONISH,
            max_size=3,
        ),
    },
)
STATUS_BODY = st.builds(
    lambda block, nested: {**block, **({"orderStatusResultModel": nested} if nested else {})},
    BLOCK,
    st.none() | BLOCK | JSONISH,
)
PAYMENT_BODY = st.fixed_dictionaries(
    {},
    optional={
        "success": INTERESTING,
        "data": st.fixed_dictionaries({}, optional={"orderId": INTERESTING}) | JSONISH,
        "error": st.fixed_dictionaries(
            {}, optional={"code": INTERESTING, "description": INTERESTING, "message": INTERESTING}
        )
        | JSONISH,
        "orderStatus": STATUS_BODY | INTERESTING,
        "errorCode": INTERESTING,
        "errorMessage": INTERESTING,
        "actionCode": INTERESTING,
        "state": INTERESTING,
        "paymentAmountInfo": st.fixed_dictionaries({}, optional={"paymentState": INTERESTING}),
        "orderStatusResultModel": BLOCK,
    },
)
# Near-valid answers: small pools, so that paid, declined and contradicting orders are common.
NEAR_STATUS = st.sampled_from([2, 2, 2, "2", " 2", 6, "6", 1, 0, 3, 4, -1, None, 2.0, "x"])
NEAR_STATE = st.sampled_from(
    ["DEPOSITED", "DEPOSITED", "deposited", None, None, "DECLINED", "APPROVED", "REFUNDED", "", 7]
)
NEAR_BLOCK = st.fixed_dictionaries(
    {"orderStatus": NEAR_STATUS},
    optional={
        "errorCode": st.sampled_from(["0", 0, None, "7", "6", "00"]),
        "actionCode": st.sampled_from([0, "0", None, 116, -2007, 999999, True]),
        "paymentAmountInfo": st.fixed_dictionaries({"paymentState": NEAR_STATE}),
        "state": NEAR_STATE,
    },
)
NEAR_STATUS_BODY = st.builds(
    lambda block, nested: {**block, **({"orderStatusResultModel": nested} if nested else {})},
    NEAR_BLOCK,
    st.none() | st.none() | NEAR_BLOCK,
)
NEAR_PAYMENT_BODY = st.fixed_dictionaries(
    {"orderStatus": NEAR_STATUS_BODY | NEAR_STATUS},
    optional={
        "success": st.sampled_from([True, "true", False, None]),
        "data": st.fixed_dictionaries({"orderId": st.just("gw-1")}),
        "error": st.fixed_dictionaries({"code": st.sampled_from(["0", 0, "7", "10"])}),
        "actionCode": st.sampled_from([0, 116, None]),
        "state": NEAR_STATE,
    },
)
ANY_BODY = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), JSONISH, max_size=8)

HTTP_STATUS = st.sampled_from([200, 200, 201, 204, 302, 400, 403, 404, 429, 500, 502, 503]) | (
    st.integers(min_value=0, max_value=999)
)


def json_replies(
    bodies: st.SearchStrategy[Any], statuses: st.SearchStrategy[int] = HTTP_STATUS
) -> st.SearchStrategy[GatewayResult]:
    return st.builds(JsonReply, statuses, bodies, st.none() | st.text(max_size=10))


MOSTLY_200 = st.just(200) | st.just(200) | HTTP_STATUS


OTHER_RESULTS: st.SearchStrategy[GatewayResult] = st.one_of(
    st.builds(HttpErrorReply, HTTP_STATUS, st.text(max_size=50), st.none() | st.text(max_size=5)),
    st.builds(NotJsonReply, HTTP_STATUS, st.text(max_size=20), st.text(max_size=50)),
    st.builds(ConnectionFailed, st.text(max_size=400), st.booleans()),
    st.builds(ReadTimedOut, st.text(max_size=50), st.booleans()),
    st.builds(ConnectionLost, st.text(max_size=50), st.booleans()),
)
PAYMENT_RESULTS = (
    json_replies(NEAR_PAYMENT_BODY | PAYMENT_BODY | ANY_BODY)
    | json_replies(NEAR_PAYMENT_BODY, MOSTLY_200)
    | json_replies(NEAR_PAYMENT_BODY, MOSTLY_200)
    | OTHER_RESULTS
)
STATUS_RESULTS = (
    json_replies(NEAR_STATUS_BODY | STATUS_BODY | ANY_BODY)
    | json_replies(NEAR_STATUS_BODY, MOSTLY_200)
    | json_replies(NEAR_STATUS_BODY, MOSTLY_200)
    | OTHER_RESULTS
)
#: A JsonReply built by hand with something other than an object as its body.
ODD_RESULTS = json_replies(JSONISH)


# -- the oracle ---------------------------------------------------------------------------------

_DIGITS = re.compile(r"[+-]?[0-9]+")


def is_two(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value == 2
    if isinstance(value, str):
        text = value.strip()
        return bool(_DIGITS.fullmatch(text)) and len(text) < 30 and int(text) == 2
    return False


def is_deposited(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.strip().upper() == "DEPOSITED"


def mentions_paid(value: object) -> bool:
    """orderStatus 2 or paymentState/state DEPOSITED anywhere in the body."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "orderStatus" and is_two(item):
                    return True
                if key in ("paymentState", "state") and is_deposited(item):
                    return True
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
    return False


_FLAT_KEYS = ("actionCode", "paymentAmountInfo", "state", "orderStatusResultModel")


def status_locations(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the parser looks for order-state signals in one order block."""
    found = [body]
    nested = body.get("orderStatusResultModel")
    if isinstance(nested, dict):
        found.append(nested)
    return found


def payment_block(body: dict[str, Any]) -> dict[str, Any] | None:
    block = body.get("orderStatus")
    if isinstance(block, dict):
        return block
    if block is not None or any(key in body for key in _FLAT_KEYS):
        return body
    return None


def signals(block: dict[str, Any]) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for location in status_locations(block):
        for key in ("orderStatus", "state"):
            if location.get(key) is not None:
                found.append((key, location[key]))
        info = location.get("paymentAmountInfo")
        if isinstance(info, dict) and info.get("paymentState") is not None:
            found.append(("paymentState", info["paymentState"]))
    return found


def readable(key: str, value: object) -> bool:
    """Whether the parser reads this signal (the rest reads as absent)."""
    if key == "orderStatus":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return abs(value) < 10**18
        return isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()) is not None
    return isinstance(value, str) and value.isascii() and bool(value.strip())


def says_paid(key: str, value: object) -> bool:
    return is_two(value) if key == "orderStatus" else is_deposited(value)


def assert_sound(outcome: Outcome, result: GatewayResult, block: dict[str, Any] | None) -> None:
    assert isinstance(outcome, Outcome)
    assert isinstance(outcome.category, Category)
    assert isinstance(outcome.reason, str) and outcome.reason
    assert len(outcome.reason) <= 64
    assert len(outcome.message) <= MESSAGE_LIMIT
    if outcome.category is not Category.PAID:
        return
    assert isinstance(result, JsonReply)
    assert 200 <= result.http_status <= 299
    assert mentions_paid(result.body)
    if block is not None:
        read = [(k, v) for k, v in signals(block) if readable(k, v)]
        assert read, "PAID without a readable order-state signal"
        assert all(says_paid(k, v) for k, v in read), f"PAID despite {read}"


# -- properties ---------------------------------------------------------------------------------


@SETTINGS
@given(PAYMENT_RESULTS)
def test_classify_payment_is_total_and_never_invents_a_payment(result: GatewayResult) -> None:
    outcome = classify_payment(result)
    block = None
    if isinstance(result, JsonReply) and isinstance(result.body, dict):
        block = payment_block(result.body)
    assert_sound(outcome, result, block)


@SETTINGS
@given(STATUS_RESULTS)
def test_classify_status_is_total_and_never_invents_a_payment(result: GatewayResult) -> None:
    outcome = classify_status(result)
    block = result.body if isinstance(result, JsonReply) else None
    assert_sound(outcome, result, block)


@SETTINGS
@given(ODD_RESULTS)
def test_any_json_value_as_a_body(result: JsonReply) -> None:
    for classify in (classify_payment, classify_status):
        outcome = classify(result)
        assert_sound(outcome, result, None)
        if not isinstance(result.body, dict):
            assert outcome.category is Category.TRANSIENT


@SETTINGS
@given(OTHER_RESULTS)
def test_results_without_json_are_never_paid_nor_a_decline(result: GatewayResult) -> None:
    for classify in (classify_payment, classify_status):
        outcome = classify(result)
        assert outcome.category in (
            Category.TRANSIENT,
            Category.UNKNOWN,
            Category.MERCHANT_CONFIG,
        )


@SETTINGS
@given(st.builds(ReadTimedOut, st.text()) | st.builds(ConnectionLost, st.text()))
def test_a_sent_charge_without_an_answer_is_unknown(result: GatewayResult) -> None:
    assert classify_payment(result).category is Category.UNKNOWN


@SETTINGS
@given(
    code=st.sampled_from(["1", "5", "10", 1, 5, 10]),
    text=st.text(max_size=60),
)
def test_unknown_texts_of_ambiguous_codes_are_never_a_decline(code: object, text: str) -> None:
    from billing.gateway.codes import ERROR_TEXT_RULES

    outcome = classify_payment(
        JsonReply(200, {"success": False, "error": {"code": code, "description": text}})
    )
    lowered = " ".join(text.lower().split())
    if not any(needle in lowered for needles, _ in ERROR_TEXT_RULES for needle in needles):
        assert outcome.category is Category.UNKNOWN
