"""What the sandbox accepts: request parameters read and checked the way the gateway does
(credentials, orderNumber, amount N..12, currency, language). It decides which requests are
refused and with which error; it never keeps or changes an order (that is the ledger's job).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from billing.sandbox.ledger import Refusal

if TYPE_CHECKING:
    from billing.sandbox.app import SandboxConfig

_MAX_ORDER_NUMBER = 32
_AMOUNT = re.compile(r"[0-9]{1,12}")
_CURRENCY = re.compile(r"[0-9]{3}")
_LANGUAGE = re.compile(r"[A-Za-z]{2}")
DEFAULT_CURRENCY = "643"


async def read_params(request: Request) -> dict[str, Any]:
    """Query string merged with a JSON or form-encoded body (the body wins)."""
    params: dict[str, Any] = dict(request.query_params)
    body = (await request.body()).decode("utf-8", errors="replace").strip()
    if not body:
        return params
    if "json" in request.headers.get("content-type", "") or body.startswith("{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            params.update(parsed)
    else:
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


def param_text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def parse_amount(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and _AMOUNT.fullmatch(value):
        amount = int(value)
    else:
        return None
    return amount if 0 < amount < 10**12 else None


def parse_refund_amount(value: object) -> int | Refusal | None:
    """refund.do's amount: ``None`` when omitted or 0 (everything left), else the amount;
    a :class:`Refusal` when it is not a whole number of minor units."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and _AMOUNT.fullmatch(value):
        amount = int(value)
    else:
        return Refusal("Invalid amount")
    if not 0 <= amount < 10**12:
        return Refusal("Invalid amount")
    return amount or None


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def authorized(params: dict[str, Any], config: SandboxConfig) -> bool:
    """A known token, or a known login with its password (the main one or ``logins``)."""
    token = param_text(params, "token")
    tokens = [t for t in (config.token, *config.tokens) if t is not None]
    if tokens and token is not None:
        return any([same_secret(token, known) for known in tokens])
    user, password = param_text(params, "userName"), param_text(params, "password")
    logins = [(config.username, config.password), *config.logins]
    # Every pair is compared (no early exit), so the time says nothing about which matched.
    return any([same_secret(user, u) & same_secret(password, p) for u, p in logins])


def merchant_params(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return ()
    if not isinstance(value, dict):
        return ()
    return tuple((str(k), str(v)) for k, v in value.items())


@dataclass(frozen=True)
class ChargeParams:
    """A validated recurrentPayment.do request."""

    order_number: str
    binding_id: str
    amount: int
    currency: str
    description: str
    client_id: str
    merchant_params: tuple[tuple[str, str], ...]


def validate_charge(params: dict[str, Any]) -> ChargeParams | tuple[str, str]:
    """The charge, or the (error code, text) the gateway answers."""
    number = param_text(params, "orderNumber")
    if not number or len(number) > _MAX_ORDER_NUMBER:
        return "10", "Incorrect value of [orderNumber]"
    amount = parse_amount(params.get("amount"))
    if amount is None:
        return "5", "Invalid amount"
    currency = param_text(params, "currency")
    if currency is None and params.get("currency") is None:
        currency = DEFAULT_CURRENCY
    if currency is None or not _CURRENCY.fullmatch(currency):
        return "10", "Incorrect value of [currency]"
    language = params.get("language")
    if language not in (None, "") and not (
        isinstance(language, str) and _LANGUAGE.fullmatch(language)
    ):
        return "10", "Incorrect value of [language]"
    binding_id = param_text(params, "bindingId")
    if not binding_id:
        return "2", "The binding is not found"
    return ChargeParams(
        order_number=number,
        binding_id=binding_id,
        amount=amount,
        currency=currency,
        description=param_text(params, "description") or "",
        client_id=param_text(params, "clientId") or "sandbox-client",
        merchant_params=merchant_params(params.get("additionalParameters")),
    )


def digits(seed: str, count: int) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return str(number % 10**count).zfill(count)
