"""``/api/invoices``, retries and payments: list, show, void and write off invoices; retry
one subscription or many; refund and reverse a paid attempt; resolve an attempt waiting for
an operator.

Each route checks who may call it (money is operators only), calls one use case with the
token's name as the actor and the body's reason, and returns its answer. Whether a
charge, refund or reversal may happen, and what the gateway's answer means, is the use
case's decision, never this module's.
"""

from typing import Annotated, Any

from fastapi import Header, Response
from pydantic import AfterValidator

from billing.domain.model import InvoiceStatus
from billing.entrypoints.http.admin import schemas
from billing.entrypoints.http.admin.auth import Money, Reader
from billing.entrypoints.http.admin.common import (
    Id,
    Limit,
    Offset,
    QueryId,
    QueryText,
    Services,
    router,
)
from billing.entrypoints.http.admin.inputs import no_nul

invoices = router("/api/invoices", "invoices")
retries = router("/api", "retries")
payments = router("/api/attempts", "payments")


@invoices.get("", response_model=list[schemas.InvoiceOut])
def list_invoices(
    _who: Reader,
    app: Services,
    status: InvoiceStatus | None = None,
    subscription_id: QueryId = None,
    failure: QueryText = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return app.read.list_invoices(
        status=status,
        subscription_id=subscription_id,
        failure=failure,
        limit=limit,
        offset=offset,
    )


@invoices.get("/{invoice_id}", response_model=schemas.InvoiceDetail)
def show_invoice(invoice_id: Id, _who: Reader, app: Services) -> dict[str, Any]:
    return app.read.show_invoice(invoice_id)


@invoices.post("/{invoice_id}/void", response_model=schemas.InvoiceOut)
def void_invoice(
    invoice_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    """Nobody owes it. Refused for paid invoices and while a charge is in flight."""
    return app.actions.invoices.void(invoice_id, actor=who.name, reason=body.reason)


@invoices.post("/{invoice_id}/write-off", response_model=schemas.InvoiceOut)
def write_off_invoice(
    invoice_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    """Owed but not collectable: uncollectible. Refused like void."""
    return app.actions.invoices.write_off(invoice_id, actor=who.name, reason=body.reason)


@retries.post("/subscriptions/{subscription_id}/retry", response_model=schemas.RetryOut)
def retry(
    subscription_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    """Charge the oldest open invoice now. Does not use up a dunning step."""
    return app.actions.retries.retry(subscription_id, actor=who.name, reason=body.reason)


@retries.post("/retries/bulk", response_model=schemas.BulkRetryOut)
def bulk_retry(body: schemas.BulkRetry, who: Money, app: Services) -> dict[str, Any]:
    """Retry every active or past_due subscription whose open invoice last failed so."""
    return app.actions.retries.bulk_retry(
        body.failure, actor=who.name, reason=body.reason, dry_run=body.dry_run
    )


@payments.post("/{attempt_id}/refund", response_model=schemas.RefundOut)
def refund(
    attempt_id: Id,
    body: schemas.RefundRequest,
    who: Money,
    app: Services,
    response: Response,
    idempotency_key: Annotated[
        str, Header(alias="Idempotency-Key", min_length=1, max_length=255), AfterValidator(no_nul)
    ],
) -> dict[str, Any]:
    """Refund (part of) a paid attempt via refund.do. `state` says what is known:
    `unknown` means the gateway did not answer and the refund may or may not have
    happened — check before trying again."""
    stored = app.actions.refunds.refund(
        attempt_id=attempt_id,
        amount=body.amount,
        actor=who.name,
        reason=body.reason,
        idempotency_key=idempotency_key,
    )
    if stored.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return stored.body


@payments.post("/{attempt_id}/reverse", response_model=schemas.RefundOut)
def reverse(attempt_id: Id, body: schemas.ReasonOnly, who: Money, app: Services) -> dict[str, Any]:
    """Cancel a payment made today (the gateway's banking day, not UTC) via reverse.do;
    later days need a refund."""
    return app.actions.refunds.reverse(attempt_id, actor=who.name, reason=body.reason)


@payments.post("/{attempt_id}/resolve", response_model=schemas.ResolveOut)
def resolve(attempt_id: Id, body: schemas.ReasonOnly, who: Money, app: Services) -> dict[str, Any]:
    """Resolve an attempt waiting for an operator (`needs_operator`). The gateway is asked
    first: DEPOSITED → paid (or flagged as a second charge); no such order or declined →
    not charged, and the invoice may be retried; still pending → 409, nothing changed."""
    return app.actions.resolve.resolve(attempt_id, actor=who.name, reason=body.reason)


@payments.post("/{attempt_id}/capture", response_model=schemas.ResolveOut)
def capture(attempt_id: Id, body: schemas.ReasonOnly, who: Money, app: Services) -> dict[str, Any]:
    """Capture a held (two-phase, APPROVED) order with deposit.do. `result` is `paid` once the
    order status says DEPOSITED, else `capture_not_confirmed` (nothing recorded); an order
    that is not held → 409, nothing changed."""
    return app.actions.held_orders.capture(attempt_id, actor=who.name, reason=body.reason)


@payments.post("/{attempt_id}/release", response_model=schemas.ResolveOut)
def release(attempt_id: Id, body: schemas.ReasonOnly, who: Money, app: Services) -> dict[str, Any]:
    """Release a held (two-phase, APPROVED) order with reverse.do. `result` is `released` once
    the order is REVERSED (no money taken; the invoice follows its retry schedule), else
    `release_not_confirmed`; an order that is not held → 409, nothing changed."""
    return app.actions.held_orders.release(attempt_id, actor=who.name, reason=body.reason)
