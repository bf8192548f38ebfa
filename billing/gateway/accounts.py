"""Merchant accounts at the gateway: one :class:`~billing.gateway.port.Gateway` per account
name (its own client, credentials, dialect and rate limiter), and the routing of a call to
the account of the subscription it is for.

:class:`MerchantGateways` is itself the ``default`` account's gateway, so code that knows
of one account only keeps working. :func:`gateway_for` is how a use case picks an account's
gateway; a single gateway handed in (a test fake) serves every account. An account that is
not configured (a subscription whose account was removed from the settings) gets a gateway
that sends nothing and answers like a front door refusing us (HTTP 421): a merchant
configuration error that pauses that account, never the customer's decline.
This module never decides what an answer means.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from billing.gateway.port import (
    ChargeRequest,
    DeclineRequest,
    DepositRequest,
    Gateway,
    RefundRequest,
    ReverseRequest,
)
from billing.gateway.results import GatewayResult, HttpErrorReply

DEFAULT_ACCOUNT: Final = "default"
#: "Misdirected request": what an unconfigured account's calls answer, without sending.
NOT_CONFIGURED_STATUS: Final = 421


@dataclass(frozen=True)
class Account:
    """One merchant account's gateway and what the pipeline needs to know of it."""

    name: str
    gateway: Gateway
    two_phase: bool = False
    #: Send the customer's email/phone in additionalParameters (fiscal receipts, 54-FZ).
    fiscal_receipts: bool = True
    dialect: str = "rbs"


class UnconfiguredAccount:
    """The gateway of an account missing from the settings: every call is refused here."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _refused(self) -> GatewayResult:
        return HttpErrorReply(
            NOT_CONFIGURED_STATUS,
            f"merchant account {self.name!r} is not configured; nothing was sent",
            None,
        )

    def charge(self, request: ChargeRequest) -> GatewayResult:
        return self._refused()

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult:
        return self._refused()

    def refund(self, request: RefundRequest) -> GatewayResult:
        return self._refused()

    def reverse(self, request: ReverseRequest) -> GatewayResult:
        return self._refused()

    def deposit(self, request: DepositRequest) -> GatewayResult:
        return self._refused()

    def decline(self, request: DeclineRequest) -> GatewayResult:
        return self._refused()

    def close(self) -> None:
        return None


class MerchantGateways:
    """Every configured account's gateway by name; the port itself is the default's."""

    def __init__(self, accounts: Mapping[str, Account]) -> None:
        if DEFAULT_ACCOUNT not in accounts:
            raise ValueError("the default merchant account is missing")
        self._accounts = dict(accounts)
        self._default = self._accounts[DEFAULT_ACCOUNT].gateway

    def __repr__(self) -> str:
        return f"MerchantGateways({sorted(self._accounts)})"

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._accounts)

    def account(self, name: str) -> Account | None:
        return self._accounts.get(name)

    def gateway(self, name: str) -> Gateway:
        found = self._accounts.get(name)
        return found.gateway if found is not None else UnconfiguredAccount(name)

    # -- the default account's port -------------------------------------------------------------

    def charge(self, request: ChargeRequest) -> GatewayResult:
        return self._default.charge(request)

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult:
        return self._default.order_status(order_number=order_number, order_id=order_id)

    def refund(self, request: RefundRequest) -> GatewayResult:
        return self._default.refund(request)

    def reverse(self, request: ReverseRequest) -> GatewayResult:
        return self._default.reverse(request)

    def deposit(self, request: DepositRequest) -> GatewayResult:
        return self._default.deposit(request)

    def decline(self, request: DeclineRequest) -> GatewayResult:
        return self._default.decline(request)

    def close(self) -> None:
        for account in self._accounts.values():
            account.gateway.close()


def gateway_for(gateway: Gateway, account: str | None) -> Gateway:
    """The gateway of merchant ``account`` (None = the default one)."""
    if isinstance(gateway, MerchantGateways):
        return gateway.gateway(account or DEFAULT_ACCOUNT)
    return gateway


def account_names(gateway: Gateway | None) -> tuple[str, ...]:
    """The configured account names (just ``default`` for a single gateway, or none)."""
    return gateway.names if isinstance(gateway, MerchantGateways) else (DEFAULT_ACCOUNT,)


def fiscal_receipts(gateway: Gateway, account: str | None) -> bool:
    """Whether ``account`` sends the customer's contacts for fiscal receipts."""
    if isinstance(gateway, MerchantGateways):
        found = gateway.account(account or DEFAULT_ACCOUNT)
        return found is not None and found.fiscal_receipts
    return True


def account_summaries(gateway: Gateway | None) -> dict[str, dict[str, object]]:
    """What may be shown of each configured account (never a credential or its URL)."""
    if not isinstance(gateway, MerchantGateways):
        return {DEFAULT_ACCOUNT: {}}
    return {
        a.name: {
            "dialect": a.dialect,
            "two_phase": a.two_phase,
            "fiscal_receipts": a.fiscal_receipts,
        }
        for a in gateway
    }
