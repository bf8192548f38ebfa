"""Merchant accounts: the acquirer logins a SaaS charges through, one per legal entity or
currency.

The ``default`` account is today's ``BILLING_GATEWAY_*`` settings; more come from
``BILLING_MERCHANTS__<NAME>__<FIELD>`` variables or ``[merchants.<name>]`` TOML tables.
Each has its own gateway URL, dialect, credentials (a token, or a login and a password),
rate limit, two-phase flag and fiscal-receipt flag. This module validates them; it never
prints a credential (``SecretStr``, errors without the input).
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from billing.domain.dialects import Dialect, parse_dialect
from billing.domain.subscription import ACCOUNT_NAME, DEFAULT_ACCOUNT

__all__ = ["DEFAULT_ACCOUNT", "MerchantAccount", "check_account_name", "check_merchants"]
from billing.gateway.request_checks import check_base_url

_NAME_RULE: Final = "a lower-case letter, then up to 31 lower-case letters, digits or _"


def check_account_name(name: str) -> str:
    """A merchant account's name (``eu``, ``rub_entity``); ValueError naming the rule."""
    if not isinstance(name, str) or not ACCOUNT_NAME.fullmatch(name):
        raise ValueError(f"merchant account name {name!r} must be {_NAME_RULE}")
    return name


class MerchantAccount(BaseModel):
    """One merchant login at the acquirer. ``repr`` and errors never show a credential."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str
    dialect: Dialect = Dialect.RBS
    username: str | None = None
    password: SecretStr | None = None
    #: Sent instead of userName/password when set.
    token: SecretStr | None = None
    #: Calls per second across every worker for this account (Redis-backed); 0 = none.
    rate_limit: int = Field(default=0, ge=0)
    #: Approved charges are held until captured with deposit.do.
    two_phase: bool = False
    #: Send the subscription's customer email/phone in ``additionalParameters`` so that the
    #: acquirer's fiscalization (54-FZ) sends the receipt there.
    fiscal_receipts: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("dialect", mode="before")
    @classmethod
    def _dialect(cls, value: object) -> Dialect:
        return parse_dialect(value)

    @field_validator("username", "password", "token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _credentials(self) -> MerchantAccount:
        if self.token is None and (self.username is None or self.password is None):
            raise ValueError("needs a token, or a username and a password")
        return self

    def secrets(self) -> list[str]:
        """The credential values, for the log redaction."""
        return [s.get_secret_value() for s in (self.password, self.token) if s is not None]


def check_merchants(merchants: dict[str, MerchantAccount]) -> dict[str, MerchantAccount]:
    """Named accounts besides the default one: valid names, ``default`` not among them."""
    for name in merchants:
        check_account_name(name)
        if name == DEFAULT_ACCOUNT:
            raise ValueError(
                "'default' is the BILLING_GATEWAY_* account; give the others another name"
            )
    return merchants
