"""Which public event each internal change is (billing.domain.public_events), as a table."""

from __future__ import annotations

import pytest

from billing.domain.public_events import EVENT_TYPES, parse_types, public_type


@pytest.mark.parametrize(
    ("kind", "from_state", "to_state", "expected"),
    [
        ("subscription_created", None, "active", "subscription.created"),
        ("subscription_updated", None, None, "subscription.updated"),
        ("binding_changed", None, None, "subscription.updated"),
        ("subscription_status", "active", "paused", "subscription.paused"),
        ("subscription_status", "paused", "active", "subscription.resumed"),
        ("subscription_status", "paused", "past_due", "subscription.resumed"),
        ("subscription_status", "paused", "canceled", "subscription.canceled"),
        ("subscription_status", "active", "past_due", "subscription.past_due"),
        ("subscription_status", "past_due", "suspended", "subscription.suspended"),
        (
            "subscription_status",
            "active",
            "needs_payment_method",
            "subscription.needs_payment_method",
        ),
        ("subscription_status", "suspended", "canceled", "subscription.canceled"),
        ("subscription_status", "past_due", "active", "subscription.recovered"),
        ("subscription_status", "held", "active", "subscription.recovered"),
        ("subscription_status", "active", "held", "subscription.updated"),
        ("subscription_status", "active", "active", None),
        ("invoice_opened", None, "open", "invoice.created"),
        ("invoice_paid", "open", "paid", "invoice.paid"),
        ("attempt_declined", None, "declined", "invoice.payment_failed"),
        ("attempt_failed", None, "failed", "invoice.payment_failed"),
        ("attempt_paid", None, "paid", None),
        ("invoice_void", "open", "void", "invoice.voided"),
        ("invoice_uncollectible", "open", "uncollectible", "invoice.uncollectible"),
        ("needs_operator", "unknown", "needs_operator", "charge.needs_operator"),
        ("double_charge", None, None, "charge.double_charge"),
        ("refund_succeeded", "requested", "succeeded", "refund.succeeded"),
        ("reverse_failed", "requested", "failed", "refund.failed"),
        ("refund_unknown", "requested", "unknown", None),
        ("charging_paused", "closed", "open", "charging.paused"),
        ("charging_resumed", "open", "closed", "charging.resumed"),
        ("callback_received", None, None, None),
        ("manual_retry", None, None, None),
    ],
)
def test_public_type(
    kind: str, from_state: str | None, to_state: str | None, expected: str | None
) -> None:
    assert public_type(kind, from_state, to_state) == expected
    assert expected is None or expected in EVENT_TYPES


def test_parse_types_refuses_unknown_names_in_one_line() -> None:
    assert parse_types(" invoice.paid ,invoice.paid,") == ("invoice.paid",)
    assert parse_types(None) == ()
    with pytest.raises(ValueError, match=r"unknown event type 'invoice\.payed'"):
        parse_types("invoice.paid,invoice.payed")
