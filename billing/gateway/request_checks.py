"""The gateway's own format rules for what we send (orderNumber 1..32, amount N..12,
text lengths): a request that breaks them raises GatewayError before anything leaves.
Pure; it never sends anything."""

from __future__ import annotations

from typing import Final

import httpx

from billing.errors import GatewayError

_MAX_ORDER_NUMBER: Final = 32
_MAX_AMOUNT: Final = 10**12 - 1  # N..12


def ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check_order_number(order_number: object) -> None:
    if not isinstance(order_number, str) or not 1 <= len(order_number) <= _MAX_ORDER_NUMBER:
        raise GatewayError(f"orderNumber must be 1..{_MAX_ORDER_NUMBER} characters")
    if not order_number.isprintable() or order_number.strip() != order_number:
        raise GatewayError("orderNumber must be printable without surrounding spaces")


def check_amount(amount: object, *, minimum: int) -> None:
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int)
        or not minimum <= amount <= _MAX_AMOUNT
    ):
        raise GatewayError(
            f"amount must be a whole number of minor units from {minimum} to {_MAX_AMOUNT}"
        )


def check_text(name: str, value: object, limit: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise GatewayError(f"{name} must be a string")
    if not value and not allow_empty:
        raise GatewayError(f"{name} must not be empty")
    if len(value) > limit:
        raise GatewayError(f"{name} must be at most {limit} characters")


def check_base_url(value: str) -> str:
    """A gateway base URL: http(s) with a host, no credentials, query or fragment (without a
    path, the dialect's base path is used). ValueError naming the rule, never the URL."""
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError):
        raise ValueError("base_url is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("base_url must be an http(s) URL with a host")
    if url.userinfo:
        raise ValueError("base_url must not carry credentials; use username/password")
    if url.query or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    return str(url).rstrip("/")
