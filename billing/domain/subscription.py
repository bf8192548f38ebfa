"""A new subscription as people type it: validation, limits, the first charge time. Pure.

It decides what a valid subscription is (customer, binding, amount within the gateway's
N..12, currency, cron schedule, timezone) and when it is first charged. It must never touch
the database or the clock (``now`` is passed in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.domain.contacts import normalize_email, normalize_phone
from billing.domain.currencies import validate_currency
from billing.domain.periods import first_due, validate_cron, validate_timezone
from billing.errors import ValidationError

MAX_AMOUNT = 10**12 - 1
MAX_BACKDATE = timedelta(days=1)  # N..12 in the gateway's terms
_BINDING = re.compile(r"^[A-Za-z0-9_\-:.]{1,255}$")
#: A merchant account's name (``[merchants.<name>]``): also the settings' rule.
ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class NewSubscription:
    customer_id: str
    binding_id: str
    amount: int
    schedule: str
    currency: str = "643"
    timezone: str = "Europe/Moscow"
    description: str | None = None
    start_at: datetime | None = None
    #: The merchant account it is charged through (set once, at creation).
    merchant_account: str = DEFAULT_ACCOUNT
    #: Where the acquirer's fiscalization sends the receipt; optional.
    customer_email: str | None = None
    customer_phone: str | None = None

    def validated(self) -> NewSubscription:
        """Return a cleaned copy or raise ValidationError naming the first bad field."""
        customer = self.customer_id.strip()
        if not customer or len(customer) > 255:
            raise ValidationError("customer id must be 1 to 255 characters")
        for name, text in (("customer id", customer), ("description", self.description or "")):
            if "\x00" in text:
                raise ValidationError(f"{name} must not contain NUL (0x00) bytes")
        binding = self.binding_id.strip()
        if not binding:
            raise ValidationError("binding id must not be empty")
        if not _BINDING.match(binding):
            raise ValidationError(
                "binding id must be at most 255 letters, digits, '-', '_', ':' or '.'"
            )
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValidationError("amount must be a whole number of minor units (e.g. 49900)")
        if not 0 < self.amount <= MAX_AMOUNT:
            raise ValidationError(f"amount must be between 1 and {MAX_AMOUNT} minor units")
        validate_currency(self.currency)
        if self.description is not None and len(self.description) > 512:
            raise ValidationError("description must be at most 512 characters")
        schedule = validate_cron(self.schedule)
        validate_timezone(self.timezone)
        account = clean_account(self.merchant_account)
        email, phone = clean_contacts(self.customer_email, self.customer_phone)
        return NewSubscription(
            merchant_account=account,
            customer_email=email,
            customer_phone=phone,
            customer_id=customer,
            binding_id=binding,
            amount=self.amount,
            schedule=schedule,
            currency=self.currency,
            timezone=self.timezone,
            description=self.description,
            start_at=self.start_at,
        )


def clean_account(name: str) -> str:
    """A merchant account name as stored: trimmed, lower case, the settings' rule."""
    account = name.strip().lower() if isinstance(name, str) else ""
    if not ACCOUNT_NAME.fullmatch(account):
        raise ValidationError(
            "merchant_account must be a configured merchant account name (lower-case letters, "
            "digits, _; e.g. default)"
        )
    return account


def clean_contacts(email: str | None, phone: str | None) -> tuple[str | None, str | None]:
    """The customer's email and phone as stored (``""`` = none); ValidationError naming
    the field, never repeating the value."""
    try:
        clean_email = normalize_email(email) if email else None
        clean_phone = normalize_phone(phone) if phone else None
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return clean_email, clean_phone


def first_charge_time(clean: NewSubscription, now: datetime) -> datetime:
    """When a validated new subscription is first charged; a start far in the past is
    refused (past periods are not billed retroactively)."""
    next_charge = first_due(clean.schedule, clean.timezone, now, clean.start_at)
    if next_charge < now - MAX_BACKDATE:
        raise ValidationError(
            "start_at (--start-at) is more than a day in the past; past periods are not billed "
            "retroactively (omit it to start at the next scheduled time)"
        )
    return next_charge


def parse_amount(text: str) -> int:
    """An amount typed by a person: ASCII digits only, minor units, at most the gateway's
    12 digits (a longer number is refused here, never sent)."""
    cleaned = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", cleaned):
        raise ValidationError(
            f"amount {text[:40]!r} must be a whole number of minor units in ASCII digits "
            "(49900 = 499.00 RUB)"
        )
    if len(cleaned.lstrip("+-").lstrip("0")) > len(str(MAX_AMOUNT)):
        raise ValidationError(
            f"amount must be at most {len(str(MAX_AMOUNT))} digits of minor units "
            f"(1 to {MAX_AMOUNT})"
        )
    return int(cleaned)


def clean_binding(binding_id: str) -> str:
    """A binding id as stored: stripped, 1 to 255 safe characters."""
    binding = binding_id.strip()
    if not binding or not _BINDING.match(binding):
        raise ValidationError("binding id must be 1 to 255 letters, digits, '-', '_', ':' or '.'")
    return binding
