"""The one gateway port: every call the product makes to the acquirer, as request objects.

The HTTP client (:mod:`billing.gateway.client`), the rate limiter
(:mod:`billing.gateway.rate_limit`) and the test fake each implement :class:`Gateway`. A use
case depends on this port only, never on a transport. A call never raises for what the
gateway or the network did: it returns a typed :data:`~billing.gateway.results.GatewayResult`
that :mod:`billing.gateway.classify` reads. This module decides nothing about money.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from billing.domain.contacts import mask_email, mask_phone
from billing.domain.model import mask_binding
from billing.gateway.results import GatewayResult

#: The language asked of recurrentPayment.do: codes 1, 5 and 10 are told apart by their
#: (English) text, so the charge always asks for English.
CHARGE_LANGUAGE = "en"


@dataclass(frozen=True)
class ChargeRequest:
    """recurrentPayment.do: charge a saved card (binding) under a fresh orderNumber."""

    order_number: str
    binding_id: str
    amount: int
    currency: str
    description: str | None = None
    client_id: str | None = None
    language: str | None = None
    #: Seconds left in which the call may still be *started* (the send's lease minus the
    #: longest call); None = no limit. A rate limiter never waits for a slot past it.
    send_within: float | None = None
    #: Where the acquirer's fiscalization sends the receipt (``additionalParameters``
    #: ``email`` / ``phone``); None = not sent.
    customer_email: str | None = None
    customer_phone: str | None = None

    def __repr__(self) -> str:  # the full binding id and contacts never appear in a repr
        return (
            f"ChargeRequest(order_number={self.order_number!r}, "
            f"binding={mask_binding(self.binding_id)!r}, amount={self.amount}, "
            f"currency={self.currency!r}, email={mask_email(self.customer_email)!r}, "
            f"phone={mask_phone(self.customer_phone)!r})"
        )


@dataclass(frozen=True)
class RefundRequest:
    """refund.do: give (part of) a deposited order back; ``amount`` 0 means all of it.

    ``external_refund_id`` is stored before the call, so that a repeat is recognised by
    the gateway as the same refund."""

    order_id: str
    amount: int
    external_refund_id: str


@dataclass(frozen=True)
class ReverseRequest:
    """reverse.do: cancel a deposited (same banking day) or held order in full."""

    order_id: str


@dataclass(frozen=True)
class DepositRequest:
    """deposit.do: capture the amount held by a two-phase (APPROVED) order.

    ``amount`` 0 captures the whole held amount (the gateway's default). The call is sent
    at most once per attempt: a repeat or a timeout is settled by the order's status."""

    order_id: str
    amount: int = 0


@dataclass(frozen=True)
class DeclineRequest:
    """decline.do: cancel an order that is not paid or authorised yet (CREATED,
    PREREGISTERED): it becomes final, DECLINED with actionCode 4005. It can never take
    money, so a repeat is harmless; the order's status says whether it worked."""

    order_id: str | None = None
    order_number: str | None = None


class Gateway(Protocol):
    """What the acquirer does for us. Every method returns a result and never raises for
    the gateway's or the network's behaviour (a request that breaks the gateway's own
    format rules raises :class:`~billing.errors.GatewayError` before anything is sent)."""

    def charge(self, request: ChargeRequest) -> GatewayResult: ...

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult: ...

    def refund(self, request: RefundRequest) -> GatewayResult: ...

    def reverse(self, request: ReverseRequest) -> GatewayResult: ...

    def deposit(self, request: DepositRequest) -> GatewayResult: ...

    def decline(self, request: DeclineRequest) -> GatewayResult: ...

    def close(self) -> None: ...
