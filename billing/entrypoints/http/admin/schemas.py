"""Request and response models of the admin API (they make /openapi.json and /docs).

Requests are strict: unknown fields are refused, amounts are JSON integers of minor units,
and every request that changes something carries a ``reason`` that goes to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from billing.domain.model import AttemptState, Category, InvoiceStatus, SubscriptionStatus
from billing.domain.subscription import MAX_AMOUNT
from billing.entrypoints.http.admin.inputs import no_nul
from billing.gateway.classify_action import RefundState

Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    Field(description="Why: kept in the audit log with the token's name."),
]
Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, description="Minor units: 49900 = 499.00")]


Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{3}$"),
    Field(description="ISO 4217 numeric, three ASCII digits: 643"),
]


#: Where the acquirer's fiscalization sends the receipt (54-FZ); validated by the action.
CustomerEmail = Annotated[
    str | None,
    Field(default=None, max_length=254, description="For fiscal receipts (54-FZ); optional"),
]
CustomerPhone = Annotated[
    str | None,
    Field(default=None, max_length=32, description="For fiscal receipts: +79001234567"),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No text field may carry a NUL byte (PostgreSQL refuses them)."""
        return no_nul(value) if isinstance(value, str) else value


class CreateSubscription(_Request):
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    binding_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    amount: Amount
    currency: Currency = "643"
    schedule: Annotated[str, Field(description='Cron, read in `timezone`: "0 3 1 * *"')]
    timezone: str = "Europe/Moscow"
    description: Annotated[str, StringConstraints(max_length=512)] | None = None
    start_at: AwareDatetime | None = Field(
        default=None, description="First charge (ISO 8601 with offset); default: next run"
    )
    merchant_account: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        default="default",
        description="The merchant account charged (a configured name; set once, at creation)",
    )
    customer_email: CustomerEmail = None
    customer_phone: CustomerPhone = None
    reason: Reason


class UpdateSubscription(_Request):
    amount: Amount | None = Field(default=None, description="From the next invoice on")
    schedule: str | None = Field(default=None, description="Recomputes the next charge")
    timezone: str | None = None
    description: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description='"" clears it'
    )
    currency: Currency | None = None
    customer_email: CustomerEmail = Field(default=None, description='"" clears it')
    customer_phone: CustomerPhone = Field(default=None, description='"" clears it')
    reason: Reason


class SetBinding(_Request):
    binding_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    reason: Reason


class ReasonOnly(_Request):
    reason: Reason


class Cancel(_Request):
    at_period_end: StrictBool = Field(
        default=False,
        description="false: now (open invoices become void); true: when the current period ends",
    )
    reason: Reason


class BulkRetry(_Request):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    failure: Annotated[
        str,
        StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9_]{1,64}$"),
        Field(
            validation_alias=AliasChoices("failure", "filter", "category"),
            description="The open invoice's last failure: a category (transient, "
            "soft_decline, merchant_config) or a reason (insufficient_funds). Also accepted "
            "as `filter` or `category`.",
        ),
    ]
    dry_run: StrictBool = Field(default=False, description="Only count; write nothing")
    reason: Reason


class RefundRequest(_Request):
    amount: Amount | None = Field(default=None, description="Default: all that is left")
    reason: Reason


# -- responses ----------------------------------------------------------------------------------


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SubscriptionOut(_Response):
    id: int
    customer_id: str
    binding: str = Field(description="Masked: the last four characters only")
    merchant_account: str = "default"
    customer_email: str | None = Field(default=None, description="Masked: a***@example.com")
    customer_phone: str | None = Field(default=None, description="Masked: +7******4567")
    amount: int
    currency: str
    description: str | None
    schedule: str
    timezone: str
    status: SubscriptionStatus
    next_charge_at: str | None
    cancel_at: str | None = Field(description="Dunning's grace period ends (automatic)")
    created_at: str | None
    paused_from: str | None = None
    paused_at: str | None = None
    ends_at: str | None = Field(default=None, description="Requested cancellation takes effect")
    warnings: list[str] = Field(
        default_factory=list, description="Schedule warnings (create/update only)"
    )


class SubscriptionChange(SubscriptionOut):
    held_attempts: list[int] = Field(
        default_factory=list, description="Stored but never sent attempts withdrawn"
    )
    charges_in_flight: int = Field(
        default=0, description="Charges already sent: they settle by themselves"
    )
    voided_invoices: list[int] = Field(default_factory=list)


class AttemptOut(_Response):
    id: int
    number: int
    order_number: str
    trigger: str
    state: AttemptState
    category: Category | None
    reason: str | None
    error_code: str | None
    action_code: int | None
    gateway_order_id: str | None
    message: str | None
    needs_refund: bool
    created_at: str | None
    finished_at: str | None


class EventOut(_Response):
    id: int | None = None
    at: str | None
    kind: str
    subscription_id: int | None = None
    invoice_id: int | None = None
    attempt_id: int | None = None
    from_state: str | None = Field(default=None, alias="from")
    to_state: str | None = Field(default=None, alias="to")
    reason: str
    actor: str


class RefundOut(_Response):
    id: int
    kind: str = Field(description="refund or reverse")
    attempt_id: int
    invoice_id: int
    subscription_id: int
    amount: int
    currency: str
    external_refund_id: str
    state: RefundState = Field(description="unknown: may or may not have happened (never assumed)")
    error_code: str | None
    message: str | None
    actor: str
    reason: str
    created_at: str | None
    finished_at: str | None
    refundable_left: int | None = None
    note: str | None = None


DISPLAY_STATUS = Field(
    default=None,
    description="In words: a paid invoice whose money went back says refunded, reversed or "
    "partly refunded (status stays paid: the charge happened)",
)


class InvoiceWithAttempts(_Response):
    id: int
    period_start: str | None
    amount: int
    currency: str
    status: InvoiceStatus
    display_status: str | None = DISPLAY_STATUS
    next_attempt_at: str | None
    last_failure: str | None
    paid_at: str | None
    attempts: list[AttemptOut]


class SubscriptionDetail(SubscriptionOut):
    invoices: list[InvoiceWithAttempts]
    events: list[EventOut]
    refunds: list[RefundOut]
    timeline: list[str] = Field(description="The dunning timeline in words")


class InvoiceOut(_Response):
    id: int
    subscription_id: int
    period_start: str | None
    amount: int
    currency: str
    status: InvoiceStatus
    next_attempt_at: str | None
    attempt_count: int
    last_category: Category | None
    last_failure: str | None
    failing_since: str | None
    paid_at: str | None
    closed_at: str | None


class InvoiceDetail(InvoiceOut):
    display_status: str | None = DISPLAY_STATUS
    attempts: list[AttemptOut]
    refunds: list[RefundOut]
    events: list[EventOut]


class RetryOut(_Response):
    subscription_id: int
    invoice_id: int
    attempt_id: int
    order_number: str


class Skipped(_Response):
    subscription_id: int
    error: str


class BulkRetryOut(_Response):
    dry_run: bool
    failure: str
    count: int
    subscription_ids: list[int]
    retried: list[RetryOut] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)


class ResolveOut(_Response):
    attempt_id: int
    invoice_id: int
    subscription_id: int
    order_number: str
    state: str = Field(description="The attempt's state after resolving: paid, failed, declined")
    result: str = Field(
        description="paid, second_charge (flagged to refund), not_charged; for a held order "
        "also released, capture_not_confirmed or release_not_confirmed"
    )
    message: str


class SearchOut(_Response):
    query: str
    subscription_ids: list[int]


class ErrorOut(BaseModel):
    error: str = Field(description="A stable code: invalid_input, not_found, conflict, …")
    message: str
    fields: list[dict[str, Any]] | None = None


__all__ = [
    "BulkRetry",
    "BulkRetryOut",
    "Cancel",
    "CreateSubscription",
    "ErrorOut",
    "EventOut",
    "InvoiceDetail",
    "InvoiceOut",
    "ReasonOnly",
    "RefundOut",
    "RefundRequest",
    "ResolveOut",
    "RetryOut",
    "SearchOut",
    "SetBinding",
    "SubscriptionChange",
    "SubscriptionDetail",
    "SubscriptionOut",
    "UpdateSubscription",
]
