"""A customer's email and phone for fiscal receipts: validated, normalised, masked."""

from __future__ import annotations

import pytest

from billing.domain.contacts import mask_email, mask_phone, normalize_email, normalize_phone
from billing.domain.subscription import NewSubscription
from billing.errors import ValidationError


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+79001234567", "+79001234567"),
        ("89001234567", "+79001234567"),
        ("79001234567", "+79001234567"),
        ("9001234567", "+79001234567"),
        ("+7 (900) 123-45-67", "+79001234567"),
        ("+37121234567", "+37121234567"),  # ATOL: country code and number
    ],
)
def test_phones_are_stored_in_one_form(given: str, stored: str) -> None:
    assert normalize_phone(given) == stored


@pytest.mark.parametrize(
    "given", ["55555", "+7900555555555555", "qwerty", "8-955-55", "+0955555555"]
)
def test_a_bad_phone_is_refused_without_repeating_it(given: str) -> None:
    with pytest.raises(ValueError, match="customer_phone must be") as caught:
        normalize_phone(given)
    assert given not in str(caught.value)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("anna@Example.COM", "anna@example.com"), (" b.c+tag@mail.ru ", "b.c+tag@mail.ru")],
)
def test_emails_are_trimmed_with_a_lower_case_domain(given: str, stored: str) -> None:
    assert normalize_email(given) == stored


@pytest.mark.parametrize("given", ["zzq", "zzq@", "@zzq.org", "z q@zzq.org", "zq@zz"])
def test_a_bad_email_is_refused_without_repeating_it(given: str) -> None:
    with pytest.raises(ValueError, match="customer_email must be") as caught:
        normalize_email(given)
    assert given.strip() not in str(caught.value)


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        (mask_email, "anna.petrova@example.com", "a***@example.com"),
        (mask_phone, "+79001234567", "+7******4567"),
        (mask_email, None, None),
        (mask_phone, None, None),
    ],
)
def test_masks_keep_enough_to_recognise_and_no_more(mask, value, shown) -> None:  # type: ignore[no-untyped-def]
    assert mask(value) == shown


def test_a_new_subscription_validates_its_contacts_and_account() -> None:
    new = NewSubscription(
        customer_id="c1",
        binding_id="b1",
        amount=100,
        schedule="0 3 1 * *",
        merchant_account=" EU ",
        customer_email="Anna@Example.com",
        customer_phone="8 900 123 45 67",
    ).validated()
    assert (new.merchant_account, new.customer_email, new.customer_phone) == (
        "eu",
        "Anna@example.com",
        "+79001234567",
    )
    with pytest.raises(ValidationError, match="customer_phone"):
        NewSubscription("c1", "b1", 100, "0 3 1 * *", customer_phone="12").validated()
    with pytest.raises(ValidationError, match="merchant_account"):
        NewSubscription("c1", "b1", 100, "0 3 1 * *", merchant_account="eu-1").validated()
