"""A customer's email and phone for fiscal receipts (54-FZ): validated, normalised, masked.

The acquirer's fiscalization sends the receipt to the ``email`` / ``phone`` passed in
recurrentPayment.do's ``additionalParameters``. Phones follow the gateway doc's rule
(``^((+7|7|8)?([0-9]){10})$``) and ATOL's international form (``+`` country code and
number, no spaces); we store one form, ``+<digits>``. Pure functions; a ValueError's text
never repeats the value (it is personal data), and neither does a mask.
"""

from __future__ import annotations

import re
from typing import Final

MAX_EMAIL: Final = 254
_EMAIL: Final = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_PHONE_NOISE: Final = re.compile(r"[\s()\-.]")
_INTERNATIONAL: Final = re.compile(r"\+[1-9][0-9]{7,14}")
_RUSSIAN: Final = re.compile(r"(?:\+7|7|8)?([0-9]{10})")


def normalize_email(value: str) -> str:
    """``value`` trimmed, with a lower-case domain; ValueError when it is no address."""
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > MAX_EMAIL or not _EMAIL.fullmatch(text):
        raise ValueError(
            f"customer_email must be an email address like name@example.com "
            f"(at most {MAX_EMAIL} characters)"
        )
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def normalize_phone(value: str) -> str:
    """``+<digits>``: a Russian number in any of the doc's forms (``+79001234567``,
    ``89001234567``, ``9001234567``) or an international ``+`` number of 8-15 digits;
    spaces, dashes, dots and parentheses are ignored. ValueError otherwise."""
    text = _PHONE_NOISE.sub("", value) if isinstance(value, str) else ""
    russian = _RUSSIAN.fullmatch(text)
    if russian is not None:
        return f"+7{russian.group(1)}"
    if _INTERNATIONAL.fullmatch(text):
        return text
    raise ValueError(
        "customer_phone must be a phone number like +79001234567 "
        "(a Russian number, or + country code and number)"
    )


def mask_email(value: str | None) -> str | None:
    """``a***@example.com``: the first letter and the domain, enough to recognise it."""
    if not value:
        return value
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(value: str | None) -> str | None:
    """``+7******4567``: the country prefix and the last four digits."""
    if not value:
        return value
    if len(value) <= 6:
        return "***"
    prefix = value[:2] if value.startswith("+") else value[:1]
    return prefix + "*" * (len(value) - len(prefix) - 4) + value[-4:]
