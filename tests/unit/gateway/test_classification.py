"""classify_payment / classify_status: every category, every table row, the docs' examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing.domain.model import Category, Outcome
from billing.gateway import codes
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

# -- the gateway docs' own examples, verbatim -------------------------------------------------

DOC_PAYMENT_SUCCESS = """{ "success": true, "data": { "orderId": "f7beebe4-7c9a-43cf-8e26-67ab741f9b9e" }, "orderStatus": { "errorCode": "0", "orderNumber": "UAF-203974-DE-12", "orderStatus": 2, "actionCode": 0, "actionCodeDescription": "", "amount": 12300, "currency": "810", "date": 1491333938243, "orderDescription": "Test description", "merchantOrderParams": [ { "name": "firstParamName", "value": "firstParamValue" }, { "name": "secondParamName", "value": "secondParamValue" } ], "attributes": [], "cardAuthInfo": { "expiration": "201912", "cardholderName": "sdf sdf", "approvalCode": "123456", "paymentSystem": "VISA", "pan": "411111**1111" }, "authDateTime": 1491333939454, "terminalId": "11111", "authRefNum": "111111111111", "paymentAmountInfo": { "paymentState": "DEPOSITED", "approvedAmount": 12300, "depositedAmount": 12300, "refundedAmount": 0 }, "bankInfo": { "bankCountryName": "<UNKNOWN>" }, "chargeback": false, "operations": [ { "amount": 12300, "cardHolder": "sdf sdf", "authCode": "123456" } ] } }"""  # noqa: E501

DOC_PAYMENT_FAILURE = """{ "error": { "code": "10", "description": "An order with this number has already been registered", "message": "An order with this number has already been registered." }, "success": false }"""  # noqa: E501

DOC_STATUS_DECLINED = """{"errorCode":"0","errorMessage":"Success","orderNumber":"0784sse49d0s134567890","orderStatus":6,"actionCode":-2007,"actionCodeDescription":"Session expired","amount":33000,"currency":"643","date":1383819429914,"orderDescription":" ","merchantOrderParams":[{"name":"email","value":"yap"}],"attributes":[{"name":"mdOrder","value":"b9054496-c65a-4975-9418-1051d101f1b9"}],"cardAuthInfo":{"expiration":"201912","cardholderName":"Ivan","secureAuthInfo":{"eci":6,"threeDSInfo":{"xid":"MDAwMDAwMDEzODM4MTk0MzAzMjM="}},"pan":"411111**1111"},"terminalId":"333333"}"""  # noqa: E501

DOC_ALL2PAY_PREREGISTERED = """{
"state": "PREREGISTERED",
"depositedAmount": 0,
"orderStatusResultModel": {
"allowedPaymentWays": [
"CARD_BINDING",
"CARD",
"MIR_PAY"
],
"amount": 247,
"clientId": "259753456",
"currency": "643",
"date": 1730530148222,
"depositFlag": "PURCHASE",
"gwId": null,
"gwOrderId": null,
"failUrl": "http://mybestmerchantreturnurl.com",
"hasTimeout": false,
"merchantLogin": "test_user",
"orderDescription": "Test order",
"orderId": "8e4c2673-98e6-11ef-ab20-4989eedfa34b",
"orderNumber": "1730530146_3302",
"orderParams": {
"paramE": "deposit"
},
"orderStatus": -1,
"paymentWay": null,
"successUrl": "https://mybestmerchantreturnurl.com"
}
}"""

DOC_ALL2PAY_DEPOSITED = """{
"state": "DEPOSITED",
"depositedAmount": 920,
"orderStatusResultModel": {
"actionCode": 0,
"actionCodeDescription": "",
"amount": 920,
"authDateTime": 1730537059726,
"authRefNum": "152733574684",
"bankInfo": {
"bankName": "SBERBANK OF RUSSIA",
"bankCountryCode": "RU"
},
"cardInfo": {
"approvalCode": "123456",
"cardholderName": "CARDHOLDER NAME",
"expirationDate": "202412",
"maskedPan": "427601**7761",
"paymentSystem": "VISA"
},
"clientId": "259753456",
"currency": "643",
"date": 1730537058969,
"depositFlag": "PURCHASE",
"depositedDate": 1730537060295,
"errorCode": "0",
"errorMessage": "Success",
"gwId": "SBERBANK",
"gwOrderId": "e369c6ed-ea47-7b11-8087-bba24a87c214",
"failUrl": "http://error.info?abc-123&def=567",
"hasTimeout": false,
"merchantLogin": "test_user",
"operations": [
{
"amount": 920,
"authCode": "123456",
"cardHolder": "CARDHOLDER NAME",
"currencyCode": "643",
"operationDate": 1730537059726,
"operationType": "PURCHASE",
"maskedPan": "427601**7761",
"processingResultCode": 0,
"referenceNumber": "152733574684",
"success": true,
"terminalId": "22334477"
}
],
"orderDescription": "Monitored background synergy",
"orderId": "954aab72-98f6-11ef-ab20-7d13eddab10a",
"orderNumber": "1730537029_6667",
"orderParams": {
"binProductCategory": "CREDIT",
"mdOrder_svip": "954aab72-98f6-11ef-ab20-7d13eddab10a",
"paramE": "deposit",
"paramF": "BG71MQIC844222679G7L4X",
"binProductCode": "F"
},
"orderStatus": 2,
"payerData": {
"email": "Magdalena_Moen21@hotmail.com",
"phone": "628-243-6459"
},
"paymentWay": "CARD",
"processingId": "33224466",
"refunds": [],
"transactionAttributes": {
"paymentNetRefNum": "ac4329d2-2031-416c-9e5b-836b5125c0c5"
}
}
}"""

DOC_REFUND_OK = """{
"errorCode": 0,
"errorMessage": "Successful"
}"""


def reply(body: dict[str, Any] | str, status: int = 200) -> JsonReply:
    return JsonReply(status, json.loads(body) if isinstance(body, str) else body)


def paid_block(**extra: Any) -> dict[str, Any]:
    return {"errorCode": "0", "orderStatus": 2, "actionCode": 0, **extra}


def declined(action: object, **extra: Any) -> dict[str, Any]:
    return {"errorCode": "0", "orderStatus": 6, "actionCode": action, **extra}


def payment_with(block: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"success": True, "data": {"orderId": "gw-order-1"}, "orderStatus": block, **extra}


def check(outcome: Outcome, category: Category, reason: str | None = None) -> None:
    assert outcome.category is category, outcome
    if reason is not None:
        assert outcome.reason == reason, outcome


# -- the docs' examples -----------------------------------------------------------------------


def test_doc_successful_payment_is_paid() -> None:
    outcome = classify_payment(reply(DOC_PAYMENT_SUCCESS))
    assert outcome == Outcome(
        category=Category.PAID,
        reason="deposited",
        message="",
        error_code="0",
        action_code=0,
        order_id="f7beebe4-7c9a-43cf-8e26-67ab741f9b9e",
        order_status=2,
        http_status=200,
    )


def test_doc_unsuccessful_payment_is_a_duplicate_to_reconcile() -> None:
    outcome = classify_payment(reply(DOC_PAYMENT_FAILURE))
    check(outcome, Category.UNKNOWN, "duplicate_order")
    assert outcome.error_code == "10"
    assert outcome.message == "An order with this number has already been registered"


def test_doc_status_example_declined_session_expired_is_not_paid() -> None:
    outcome = classify_status(reply(DOC_STATUS_DECLINED))
    assert not outcome.is_paid
    check(outcome, Category.SOFT_DECLINE, "declined_unknown_reason")
    assert outcome.action_code == -2007
    assert outcome.order_status == 6
    assert outcome.order_id == "b9054496-c65a-4975-9418-1051d101f1b9"
    assert outcome.message == "Session expired"


def test_doc_all2pay_deposited_is_paid() -> None:
    outcome = classify_status(reply(DOC_ALL2PAY_DEPOSITED))
    check(outcome, Category.PAID, "deposited")
    assert outcome.order_id == "954aab72-98f6-11ef-ab20-7d13eddab10a"
    assert outcome.order_status == 2


def test_doc_all2pay_preregistered_is_pending() -> None:
    outcome = classify_status(reply(DOC_ALL2PAY_PREREGISTERED))
    check(outcome, Category.UNKNOWN, "pending")
    assert outcome.order_id == "8e4c2673-98e6-11ef-ab20-4989eedfa34b"


def test_doc_successful_payment_block_also_reads_as_a_status() -> None:
    block = json.loads(DOC_PAYMENT_SUCCESS)["orderStatus"]
    check(classify_status(reply(block)), Category.PAID, "deposited")


def test_doc_refund_answer_is_not_a_payment() -> None:
    check(classify_payment(reply(DOC_REFUND_OK)), Category.UNKNOWN, "no_order_status")


# -- the traps --------------------------------------------------------------------------------

TRAPS = [
    pytest.param(
        payment_with(declined(116)), Category.SOFT_DECLINE, "insufficient_funds", id="ec0-os6-116"
    ),
    pytest.param(
        payment_with({"errorCode": 0, "orderStatus": 6, "actionCode": 116}),
        Category.SOFT_DECLINE,
        "insufficient_funds",
        id="ec0-int-os6-116",
    ),
    pytest.param(
        {"success": True, "errorCode": 0, "orderStatus": 6, "actionCode": 116},
        Category.SOFT_DECLINE,
        "insufficient_funds",
        id="flat-ec0-os6-116",
    ),
    pytest.param(
        payment_with({"errorCode": 0, "orderStatus": "2", "actionCode": "0"}),
        Category.PAID,
        "deposited",
        id="os-as-string-2",
    ),
    pytest.param(
        {"success": "true", "orderStatus": {"orderStatus": "2"}},
        Category.PAID,
        "deposited",
        id="success-string-os-string",
    ),
    pytest.param({"success": True}, Category.UNKNOWN, "no_order_status", id="success-only"),
    pytest.param(
        {"success": True, "data": {"orderId": "x"}},
        Category.UNKNOWN,
        "no_order_status",
        id="success-with-order-id",
    ),
    pytest.param({"errorCode": "0"}, Category.UNKNOWN, "no_order_status", id="errorcode-0-only"),
    pytest.param({"errorCode": 0}, Category.UNKNOWN, "no_order_status", id="errorcode-int-0"),
    pytest.param(
        {"success": True, "error": {"code": "0"}},
        Category.UNKNOWN,
        "no_order_status",
        id="error-block-code-0",
    ),
    pytest.param(
        payment_with({"errorCode": "0", "orderStatus": 0}),
        Category.UNKNOWN,
        "pending",
        id="os0-registered",
    ),
    pytest.param(
        payment_with({"paymentAmountInfo": {"paymentState": "deposited"}}),
        Category.PAID,
        "deposited",
        id="state-lowercase-deposited",
    ),
    pytest.param(
        payment_with({"orderStatus": 2, "paymentAmountInfo": {"paymentState": "DECLINED"}}),
        Category.UNKNOWN,
        "contradictory_status",
        id="os2-but-declined-state",
    ),
    pytest.param(
        payment_with({"orderStatus": 6, "paymentAmountInfo": {"paymentState": "DEPOSITED"}}),
        Category.UNKNOWN,
        "contradictory_status",
        id="os6-but-deposited-state",
    ),
    pytest.param(
        payment_with({"orderStatus": 2, "actionCode": 116}),
        Category.UNKNOWN,
        "contradictory_status",
        id="os2-with-decline-code",
    ),
    pytest.param(
        payment_with({"orderStatus": 2, "actionCode": 424242}),
        Category.UNKNOWN,
        "contradictory_status",
        id="os2-with-unknown-code",
    ),
    pytest.param(
        payment_with(paid_block(), success=False),
        Category.UNKNOWN,
        "contradictory_status",
        id="success-false-but-paid",
    ),
    pytest.param(
        payment_with(paid_block(errorCode="7")),
        Category.UNKNOWN,
        "error_with_order",
        id="paid-block-with-error-code",
    ),
    pytest.param(
        {
            "success": False,
            "error": {"code": "7", "description": "System error"},
            "orderStatus": paid_block(),
        },
        Category.UNKNOWN,
        "error_with_order",
        id="error-block-beats-paid-block",
    ),
    pytest.param(
        payment_with({"orderStatus": 2.0}),
        Category.UNKNOWN,
        "no_order_status",
        id="float-status-not-read",
    ),
    pytest.param(
        payment_with({"orderStatus": True}),
        Category.UNKNOWN,
        "no_order_status",
        id="bool-status-not-read",
    ),
    pytest.param(
        payment_with({"orderStatus": [2]}),
        Category.UNKNOWN,
        "no_order_status",
        id="list-status-not-read",
    ),
    pytest.param(
        payment_with({"orderStatus": "\uff12"}),
        Category.UNKNOWN,
        "no_order_status",
        id="fullwidth-digit-not-read",
    ),
    pytest.param(
        payment_with({"paymentAmountInfo": {"paymentState": "DEPOS\u0131TED"}}),
        Category.UNKNOWN,
        "no_order_status",
        id="dotless-i-state-not-read",
    ),
    pytest.param(
        payment_with(declined(None)),
        Category.SOFT_DECLINE,
        "declined_unknown_reason",
        id="declined-without-code",
    ),
    pytest.param(
        payment_with(declined(0)),
        Category.SOFT_DECLINE,
        "declined_unknown_reason",
        id="declined-code-0",
    ),
    pytest.param(
        payment_with(declined(987654)),
        Category.SOFT_DECLINE,
        "declined_unknown_reason",
        id="declined-unknown-code",
    ),
    pytest.param(
        payment_with({"orderStatus": 9}),
        Category.UNKNOWN,
        "unknown_order_status",
        id="unknown-order-status",
    ),
    pytest.param(
        payment_with({"paymentAmountInfo": {"paymentState": "WHATEVER"}}),
        Category.UNKNOWN,
        "unknown_order_status",
        id="unknown-state",
    ),
    pytest.param({}, Category.UNKNOWN, "unrecognised_reply", id="empty-object"),
    pytest.param({"foo": 1}, Category.UNKNOWN, "unrecognised_reply", id="unrelated-object"),
    pytest.param(
        {"success": False}, Category.UNKNOWN, "failed_without_code", id="success-false-only"
    ),
    pytest.param(
        {"success": False, "error": {"code": "99", "description": "Insufficient funds"}},
        Category.UNKNOWN,
        "unknown_error_code",
        id="unknown-code-known-text",
    ),
    pytest.param(
        {"errorCode": "5", "errorMessage": "Access denied"},
        Category.MERCHANT_CONFIG,
        "auth_error",
        id="flat-error-code",
    ),
    pytest.param(
        {"error": {"code": 2, "message": "The binding is not found"}},
        Category.HARD_DECLINE,
        "binding_not_found",
        id="error-code-int",
    ),
    pytest.param(
        {"error": {"code": "007"}}, Category.TRANSIENT, "system_error", id="error-code-zero-padded"
    ),
]


@pytest.mark.parametrize(("body", "category", "reason"), TRAPS)
def test_payment_traps(body: dict[str, Any], category: Category, reason: str) -> None:
    check(classify_payment(reply(body)), category, reason)


def test_paid_needs_a_2xx() -> None:
    body = json.loads(DOC_PAYMENT_SUCCESS)
    check(classify_payment(reply(body, 400)), Category.UNKNOWN, "contradictory_status")
    check(classify_status(reply(body["orderStatus"], 404)), Category.UNKNOWN)


def test_binding_not_found_asks_for_confirmation() -> None:
    outcome = classify_payment(reply({"success": False, "error": {"code": "2"}}))
    check(outcome, Category.HARD_DECLINE, "binding_not_found")
    assert outcome.confirm_before_decline is True


def test_message_is_truncated_and_fields_filled() -> None:
    text = "Insufficient funds " + "x" * 1000
    outcome = classify_payment(
        reply({"success": False, "error": {"code": "1", "description": text}}, 200)
    )
    check(outcome, Category.SOFT_DECLINE, "insufficient_funds")
    assert len(outcome.message) == MESSAGE_LIMIT
    assert outcome.error_code == "1"
    assert outcome.http_status == 200


# -- every row of the tables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "rule"),
    [pytest.param(code, rule, id=str(code)) for code, rule in sorted(codes.ACTION_CODES.items())],
)
def test_every_action_code_in_a_declined_order(action: int, rule: codes.Rule) -> None:
    for classify, result in (
        (classify_payment, reply(payment_with(declined(action)))),
        (classify_payment, reply(payment_with(declined(str(action))))),
        (classify_status, reply(declined(action))),
        (classify_status, reply({"errorCode": "0", "state": "DECLINED", "actionCode": action})),
    ):
        outcome = classify(result)
        # A final decline is never polled: an "unknown" code in it is a soft decline.
        expected = codes.DECLINED_UNKNOWN_REASON if rule.category is Category.UNKNOWN else rule
        check(outcome, expected.category, expected.reason)
        assert outcome.action_code == action


def test_action_code_tables_do_not_overlap() -> None:
    groups = list(codes.ACTION_CODE_GROUPS.values())
    seen: set[int] = set()
    for group in groups:
        assert seen.isdisjoint(group)
        seen.update(group)
    assert seen == set(codes.ACTION_CODES)
    assert codes.APPROVED_ACTION_CODES.isdisjoint(seen)


@pytest.mark.parametrize(
    ("action", "category", "reason"),
    [
        (116, Category.SOFT_DECLINE, "insufficient_funds"),
        (5, Category.SOFT_DECLINE, "refer_to_issuer"),
        (101, Category.HARD_DECLINE, "expired_card"),
        (1, Category.HARD_DECLINE, "identity_confirmation_required"),
        (208, Category.DO_NOT_RETRY, "lost_card"),
        (999, Category.DO_NOT_RETRY, "fraud_suspected"),
        (910, Category.TRANSIENT, "issuer_unreachable"),
        (-30001, Category.SOFT_DECLINE, "declined_unknown_reason"),
        (151019, Category.SOFT_DECLINE, "declined_unknown_reason"),
        (-100, Category.SOFT_DECLINE, "declined_unknown_reason"),
        (4005, Category.REQUEST_REJECTED, "declined_by_merchant"),
        (110, Category.REQUEST_REJECTED, "invalid_amount"),
        (-2002, Category.MERCHANT_CONFIG, "merchant_limit_exceeded"),
        (-2005, Category.HARD_DECLINE, "3ds_required"),
        (-2018, Category.HARD_DECLINE, "3ds_required"),
        (-2025, Category.HARD_DECLINE, "3ds_required"),
        (-2007, Category.SOFT_DECLINE, "declined_unknown_reason"),
    ],
    ids=lambda v: str(v),
)
def test_action_code_spot_checks_against_the_notes(
    action: int, category: Category, reason: str
) -> None:
    check(classify_status(reply(declined(action))), category, reason)


@pytest.mark.parametrize(
    ("code", "rule"),
    [pytest.param(code, rule, id=code) for code, rule in codes.PAYMENT_ERROR_CODES.items()],
)
def test_every_unambiguous_payment_error_code(code: str, rule: codes.Rule) -> None:
    for value in (code, int(code)):
        outcome = classify_payment(reply({"success": False, "error": {"code": value}}))
        check(outcome, rule.category, rule.reason)
        assert outcome.error_code == code
        assert outcome.confirm_before_decline is rule.confirm_before_decline
        assert outcome.order_not_found is rule.order_not_found


TEXT_CASES = [
    pytest.param(code, needle, rule, id=f"{code}-{needle}")
    for code in sorted(codes.AMBIGUOUS_PAYMENT_ERROR_CODES)
    for needles, rule in codes.ERROR_TEXT_RULES
    for needle in needles
]


@pytest.mark.parametrize(("code", "needle", "rule"), TEXT_CASES)
def test_every_error_text_of_the_ambiguous_codes(code: str, needle: str, rule: codes.Rule) -> None:
    text = f"Gateway says: {needle.upper()}."
    for error in ({"description": text}, {"message": text}):
        outcome = classify_payment(reply({"success": False, "error": {"code": code, **error}}))
        check(outcome, rule.category, rule.reason)


@pytest.mark.parametrize(
    ("code", "text", "category", "reason"),
    [
        (
            "1",
            "The funds on the card are not sufficient.",
            Category.SOFT_DECLINE,
            "insufficient_funds",
        ),
        ("1", "Wrong order number.", Category.UNKNOWN, "wrong_order_number"),
        ("1", "Order with this number already processed", Category.UNKNOWN, "duplicate_order"),
        ("5", "Using binding is disabled.", Category.HARD_DECLINE, "binding_disabled"),
        ("5", "Invalid amount", Category.REQUEST_REJECTED, "invalid_amount"),
        ("5", "Incorrect login.", Category.MERCHANT_CONFIG, "auth_error"),
        ("5", "Incorrect password", Category.MERCHANT_CONFIG, "auth_error"),
        ("5", "Authentication error", Category.MERCHANT_CONFIG, "auth_error"),
        ("5", "Access denied.", Category.MERCHANT_CONFIG, "auth_error"),
        ("5", "The user must change the password.", Category.MERCHANT_CONFIG, "auth_error"),
        ("5", "[orderId] is empty.", Category.MERCHANT_CONFIG, "missing_parameter"),
        (
            "10",
            "An order with this number has already been registered.",
            Category.UNKNOWN,
            "duplicate_order",
        ),
        ("10", "Incorrect value of [currency]", Category.REQUEST_REJECTED, "invalid_currency"),
        ("10", "Incorrect value of [language]", Category.MERCHANT_CONFIG, "invalid_language"),
        ("10", "Duplicate order number", Category.UNKNOWN, "duplicate_order"),
        (
            "10",
            "Incorrect value of [orderNumber]",
            Category.MERCHANT_CONFIG,
            "invalid_order_number",
        ),
        (
            "10",
            "Incorrect value of [orderDescription]. Links in the order description are not allowed",
            Category.REQUEST_REJECTED,
            "invalid_description",
        ),
        ("10", "Incorrect value of [amount]", Category.REQUEST_REJECTED, "invalid_amount"),
        ("1", "Something we never saw", Category.UNKNOWN, "unrecognised_error_text"),
        ("5", "", Category.UNKNOWN, "unrecognised_error_text"),
        ("10", "Недостаточно средств", Category.UNKNOWN, "unrecognised_error_text"),
        ("3", "Insufficient funds", Category.UNKNOWN, "unknown_error_code"),
        ("ERR", "Binding is disabled", Category.UNKNOWN, "unknown_error_code"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_doc_error_texts_verbatim(code: str, text: str, category: Category, reason: str) -> None:
    check(
        classify_payment(reply({"success": False, "error": {"code": code, "description": text}})),
        category,
        reason,
    )


@pytest.mark.parametrize(
    ("code", "rule"),
    [pytest.param(code, rule, id=code) for code, rule in codes.STATUS_ERROR_CODES.items()],
)
def test_every_status_error_code(code: str, rule: codes.Rule) -> None:
    for value in (code, int(code)):
        outcome = classify_status(reply({"errorCode": value, "errorMessage": "Hmm"}))
        check(outcome, rule.category, rule.reason)
        assert outcome.order_not_found is rule.order_not_found


@pytest.mark.parametrize(
    ("body", "category", "reason", "not_found"),
    [
        (
            {"errorCode": "6", "errorMessage": "Unregistered orderId."},
            Category.UNKNOWN,
            "order_not_found",
            True,
        ),
        ({"errorCode": 6}, Category.UNKNOWN, "order_not_found", True),
        (
            {"errorCode": "5", "errorMessage": "Access denied."},
            Category.MERCHANT_CONFIG,
            "auth_error",
            False,
        ),
        (
            {"errorCode": "5", "errorMessage": "The user must change the password."},
            Category.MERCHANT_CONFIG,
            "auth_error",
            False,
        ),
        (
            {"errorCode": "5", "errorMessage": "[orderId] is empty."},
            Category.MERCHANT_CONFIG,
            "missing_parameter",
            False,
        ),
        (
            {"errorCode": "5", "errorMessage": "Binding is disabled"},
            Category.MERCHANT_CONFIG,
            "access_denied",
            False,
        ),
        (
            {"errorCode": "5", "errorMessage": "User not found"},
            Category.MERCHANT_CONFIG,
            "access_denied",
            False,
        ),
        (
            {"errorCode": "7", "errorMessage": "System error."},
            Category.TRANSIENT,
            "system_error",
            False,
        ),
        (
            {"errorCode": "99", "errorMessage": "Order not found"},
            Category.UNKNOWN,
            "order_not_found",
            True,
        ),
        (
            {"errorCode": "99", "errorMessage": "Weird"},
            Category.UNKNOWN,
            "unknown_error_code",
            False,
        ),
        (
            {"errorCode": "0", "errorMessage": "Order not found"},
            Category.UNKNOWN,
            "no_order_status",
            False,
        ),
        ({"errorCode": "0"}, Category.UNKNOWN, "no_order_status", False),
        ({}, Category.UNKNOWN, "no_order_status", False),
        ({"errorCode": "7", "orderStatus": 2}, Category.TRANSIENT, "system_error", False),
    ],
    ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else str(v),
)
def test_status_error_answers(
    body: dict[str, Any], category: Category, reason: str, not_found: bool
) -> None:
    outcome = classify_status(reply(body))
    check(outcome, category, reason)
    assert outcome.order_not_found is not_found


@pytest.mark.parametrize("text", codes.ORDER_NOT_FOUND_TEXTS)
def test_every_order_not_found_text(text: str) -> None:
    outcome = classify_status(reply({"errorCode": "1", "errorMessage": text.title()}))
    check(outcome, Category.UNKNOWN, "order_not_found")
    assert outcome.order_not_found


EXPECTED_FAMILY_OUTCOME = {
    codes.PAID: (Category.PAID, "deposited"),
    codes.HELD: (Category.UNKNOWN, "held"),
    codes.PENDING: (Category.UNKNOWN, "pending"),
    codes.REVERSED: (Category.UNKNOWN, "reversed"),
    codes.REFUNDED: (Category.UNKNOWN, "refunded"),
    codes.DECLINED: (Category.SOFT_DECLINE, "insufficient_funds"),  # with actionCode 116
}


@pytest.mark.parametrize(
    ("status", "family"),
    [pytest.param(s, f, id=str(s)) for s, f in codes.ORDER_STATUS_FAMILIES.items()],
)
def test_every_order_status(status: int, family: str) -> None:
    action = 116 if family == codes.DECLINED else 0
    category, reason = EXPECTED_FAMILY_OUTCOME[family]
    for value in (status, str(status)):
        body = {"errorCode": "0", "orderStatus": value, "actionCode": action}
        outcome = classify_status(reply(body))
        check(outcome, category, reason)
        assert outcome.order_status == status
        check(classify_payment(reply(payment_with(body))), category, reason)


@pytest.mark.parametrize(
    ("state", "family"), [pytest.param(s, f, id=s) for s, f in codes.STATE_FAMILIES.items()]
)
def test_every_state(state: str, family: str) -> None:
    action = 116 if family == codes.DECLINED else 0
    category, reason = EXPECTED_FAMILY_OUTCOME[family]
    for body in (
        {"state": state, "actionCode": action},
        {"state": f" {state.lower()} ", "actionCode": action},
        {"paymentAmountInfo": {"paymentState": state}, "actionCode": action},
        {"state": state, "orderStatusResultModel": {"actionCode": action}},
    ):
        check(classify_status(reply(body)), category, reason)


@pytest.mark.parametrize(
    "body",
    [
        {"orderStatus": 2, "state": "DECLINED"},
        {"orderStatus": 2, "paymentAmountInfo": {"paymentState": "APPROVED"}},
        {"orderStatus": 1, "state": "DEPOSITED"},
        {"state": "DEPOSITED", "paymentAmountInfo": {"paymentState": "REFUNDED"}},
        {"state": "DEPOSITED", "orderStatusResultModel": {"orderStatus": 6}},
        {"orderStatus": 2, "orderStatusResultModel": {"orderStatus": 3}},
        {"state": "DEPOSITED", "orderStatusResultModel": {"state": "DECLINED"}},
        {"orderStatus": 2, "state": "SOMETHING"},
    ],
    ids=lambda b: json.dumps(b),
)
def test_contradicting_signals_are_never_paid(body: dict[str, Any]) -> None:
    check(classify_status(reply(body)), Category.UNKNOWN, "contradictory_status")
    check(classify_payment(reply(payment_with(body))), Category.UNKNOWN, "contradictory_status")


# -- results without a JSON body --------------------------------------------------------------

TRANSPORT = [
    pytest.param(
        ConnectionFailed("refused"), Category.TRANSIENT, Category.TRANSIENT, "connect_failed",
        id="connect-failed",
    ),
    pytest.param(
        ReadTimedOut("timed out"), Category.UNKNOWN, Category.TRANSIENT, "read_timeout",
        id="read-timeout",
    ),
    pytest.param(
        ConnectionLost("reset"), Category.UNKNOWN, Category.TRANSIENT, "connection_lost",
        id="connection-lost",
    ),
    pytest.param(
        ConnectionFailed("odd", request_sent=True), Category.UNKNOWN, Category.TRANSIENT,
        "connect_failed", id="connect-failed-but-sent",
    ),
    pytest.param(
        ConnectionLost("odd", request_sent=False), Category.TRANSIENT, Category.TRANSIENT,
        "connection_lost", id="connection-lost-not-sent",
    ),
    pytest.param(
        HttpErrorReply(500, "<h1>500</h1>"), Category.TRANSIENT, Category.TRANSIENT, "http_5xx",
        id="500",
    ),
    pytest.param(
        HttpErrorReply(502, "Bad gateway"), Category.TRANSIENT, Category.TRANSIENT, "http_5xx",
        id="502",
    ),
    pytest.param(
        HttpErrorReply(503, ""), Category.TRANSIENT, Category.TRANSIENT, "http_5xx", id="503"
    ),
    pytest.param(
        HttpErrorReply(504, ""), Category.TRANSIENT, Category.TRANSIENT, "http_5xx", id="504"
    ),
    pytest.param(
        HttpErrorReply(429, "slow down"), Category.TRANSIENT, Category.TRANSIENT,
        "http_retryable", id="429",
    ),
    pytest.param(
        HttpErrorReply(408, ""), Category.TRANSIENT, Category.TRANSIENT, "http_retryable",
        id="408",
    ),
    pytest.param(
        HttpErrorReply(404, "Not Found"), Category.MERCHANT_CONFIG, Category.MERCHANT_CONFIG,
        "http_4xx", id="404",
    ),
    pytest.param(
        HttpErrorReply(401, ""), Category.MERCHANT_CONFIG, Category.MERCHANT_CONFIG, "http_4xx",
        id="401",
    ),
    pytest.param(
        HttpErrorReply(301, ""), Category.MERCHANT_CONFIG, Category.MERCHANT_CONFIG,
        "http_redirect", id="301",
    ),
    pytest.param(
        HttpErrorReply(200, ""), Category.UNKNOWN, Category.UNKNOWN, "http_unexpected",
        id="200-as-error",
    ),
    pytest.param(
        HttpErrorReply(101, ""), Category.UNKNOWN, Category.UNKNOWN, "http_unexpected", id="101"
    ),
    pytest.param(
        NotJsonReply(200, "text/html", "<html>"), Category.TRANSIENT, Category.TRANSIENT,
        "not_json", id="not-json",
    ),
    pytest.param(
        JsonReply(200, [1, 2]),  # type: ignore[arg-type]
        Category.TRANSIENT, Category.TRANSIENT, "not_json", id="json-reply-with-a-list",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("result", "as_payment", "as_status", "reason"), TRANSPORT)
def test_results_without_a_json_object(
    result: GatewayResult, as_payment: Category, as_status: Category, reason: str
) -> None:
    check(classify_payment(result), as_payment, reason)
    check(classify_status(result), as_status, reason)


def test_http_status_is_kept() -> None:
    assert classify_payment(HttpErrorReply(502, "x")).http_status == 502
    assert classify_status(NotJsonReply(200, "text/html", "x")).http_status == 200


def test_an_unrecognised_result_object_is_unknown() -> None:
    for classify in (classify_payment, classify_status):
        check(classify(object()), Category.UNKNOWN, "unrecognised_result")  # type: ignore[arg-type]


# -- every category is reachable --------------------------------------------------------------

EVERY_CATEGORY: dict[Category, GatewayResult] = {
    Category.PAID: reply(DOC_PAYMENT_SUCCESS),
    Category.SOFT_DECLINE: reply(payment_with(declined(116))),
    Category.HARD_DECLINE: reply(payment_with(declined(101))),
    Category.DO_NOT_RETRY: reply(payment_with(declined(208))),
    Category.TRANSIENT: ConnectionFailed("refused"),
    Category.UNKNOWN: ReadTimedOut("timed out"),
    Category.MERCHANT_CONFIG: reply(
        {"success": False, "error": {"code": "5", "message": "Access denied"}}
    ),
    Category.REQUEST_REJECTED: reply(
        {"success": False, "error": {"code": "10", "message": "Incorrect value of [currency]"}}
    ),
}


@pytest.mark.parametrize("category", list(Category), ids=lambda c: c.value)
def test_every_category_is_reachable(category: Category) -> None:
    check(classify_payment(EVERY_CATEGORY[category]), category)
