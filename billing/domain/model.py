"""Domain vocabulary: statuses, outcome categories and value objects.

Imports no infrastructure: no SQLAlchemy, no httpx, no dramatiq.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"  # dunning retries are scheduled
    NEEDS_PAYMENT_METHOD = "needs_payment_method"  # waits for a new binding
    SUSPENDED = "suspended"  # soft-decline schedule ran out
    CANCELED = "canceled"
    PAUSED = "paused"  # by an operator
    #: The gateway refused this subscription's own charge (amount, currency, description,
    #: a merchant-side decline of that order): no charges until an operator fixes the data
    #: and resumes it. Everyone else keeps being charged.
    HELD = "held"


#: Statuses for which the scheduler opens new invoices.
BILLABLE_STATUSES = frozenset(
    {
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.NEEDS_PAYMENT_METHOD,
        SubscriptionStatus.HELD,  # periods keep being billed; charged once resumed
    }
)
#: Statuses for which open invoices are charged automatically.
CHARGEABLE_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


class AttemptTrigger(StrEnum):
    SCHEDULED = "scheduled"
    RETRY = "retry"
    MANUAL = "manual"


class AttemptState(StrEnum):
    PENDING = "pending"  # row and orderNumber stored; never sent
    SENDING = "sending"  # recurrentPayment.do may have reached the gateway
    UNKNOWN = "unknown"  # sent, outcome unknown: reconcile by order status
    PAID = "paid"
    DECLINED = "declined"  # the gateway refused the payment (final)
    FAILED = "failed"  # no money moved (transient, configuration, never sent) (final)
    NEEDS_OPERATOR = "needs_operator"  # too old to settle by status; never guessed


#: Attempt states in which the gateway may still take money for the attempt.
#: Attempts that may still charge: stored but not sent, sent, or sent with no answer yet.
IN_FLIGHT_STATES = frozenset({AttemptState.PENDING, AttemptState.SENDING, AttemptState.UNKNOWN})
#: Attempts that may already be at the gateway: only their order status settles them.
SENT_STATES = frozenset({AttemptState.SENDING, AttemptState.UNKNOWN})
FINAL_STATES = frozenset(
    {AttemptState.PAID, AttemptState.DECLINED, AttemptState.FAILED, AttemptState.NEEDS_OPERATOR}
)


class Category(StrEnum):
    """What a gateway answer means for the charge. Every answer maps to exactly one."""

    PAID = "paid"
    SOFT_DECLINE = "soft_decline"
    HARD_DECLINE = "hard_decline"
    DO_NOT_RETRY = "do_not_retry"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"
    MERCHANT_CONFIG = "merchant_config"
    #: The gateway refused this one request (its amount, currency or description, or the
    #: merchant side declined that order): hold the subscription, not everyone.
    REQUEST_REJECTED = "request_rejected"


@dataclass(frozen=True)
class Outcome:
    """The classified result of one gateway call.

    ``reason`` is a short stable slug (``insufficient_funds``, ``read_timeout``...);
    ``message`` is human text taken from the gateway (never secrets).
    """

    category: Category
    reason: str
    message: str = ""
    error_code: str | None = None
    action_code: int | None = None
    order_id: str | None = None
    order_status: int | None = None
    http_status: int | None = None
    #: The status query says the gateway has no order with that number.
    order_not_found: bool = False
    #: A hard decline that one gateway also reports during a brief outage
    #: ("binding not found"): confirm once later before asking for a new card.
    confirm_before_decline: bool = False

    @property
    def is_paid(self) -> bool:
        return self.category is Category.PAID


@dataclass(frozen=True)
class AttemptSummary:
    """What the dunning decision needs to know about one earlier attempt of an invoice."""

    category: Category
    trigger: AttemptTrigger
    binding_version: int = 1
    confirm_before_decline: bool = False
    #: When it was sent (or created, if never sent); None = not known.
    at: datetime | None = None
    #: False for a give-up of our own rate limiter: no request left, nothing to count.
    counted: bool = True


def mask_binding(binding_id: str) -> str:
    """A binding id safe for logs and screens: ``…ab12`` (last four characters only)."""
    if len(binding_id) <= 4:
        return "…" + "*" * len(binding_id)
    return "…" + binding_id[-4:]


def new_order_number(invoice_id: int, attempt_number: int) -> str:
    """A fresh gateway orderNumber (≤ 32 chars): readable ids plus randomness, so a
    number is never reused even if the database is rebuilt against the same merchant."""
    number = f"{invoice_id}-{attempt_number}-{secrets.token_hex(5)}"
    if len(number) > 32:
        number = f"{secrets.token_hex(16)}"
    return number
