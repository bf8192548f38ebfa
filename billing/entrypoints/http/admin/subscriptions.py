"""``/api/subscriptions``: create, list, show, update, set the card, pause, resume, cancel.

Each route checks who may call it, calls one use case with the token's name as the actor
and the body's reason, and returns its view. Whether a change is allowed, and what it does
to invoices and charges, is the use case's decision, never this module's.
"""

from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import AwareDatetime

from billing.domain.model import SubscriptionStatus
from billing.domain.subscription import NewSubscription
from billing.entrypoints.http.admin import schemas
from billing.entrypoints.http.admin.auth import Lifecycle, Reader
from billing.entrypoints.http.admin.common import (
    Id,
    IdempotencyKey,
    Limit,
    Offset,
    QueryText,
    Services,
    router,
)

subscriptions = router("/api/subscriptions", "subscriptions")


@subscriptions.post("", status_code=201, response_model=schemas.SubscriptionOut)
def create_subscription(
    body: schemas.CreateSubscription,
    who: Lifecycle,
    app: Services,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Create a subscription (the first charge at `start_at` or the next scheduled run)."""
    stored = app.actions.subscriptions.create(
        NewSubscription(
            customer_id=body.customer_id,
            binding_id=body.binding_id,
            amount=body.amount,
            schedule=body.schedule,
            currency=body.currency,
            timezone=body.timezone,
            description=body.description,
            start_at=body.start_at,
            merchant_account=body.merchant_account,
            customer_email=body.customer_email,
            customer_phone=body.customer_phone,
        ),
        actor=who.name,
        reason=body.reason,
        idempotency_key=idempotency_key,
    )
    if stored.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return stored.body


@subscriptions.get("", response_model=list[schemas.SubscriptionOut])
def list_subscriptions(
    _who: Reader,
    app: Services,
    status: SubscriptionStatus | None = None,
    customer_id: QueryText = None,
    failure: Annotated[
        QueryText, Query(description="open invoice's last failure: category or reason")
    ] = None,
    failing_since: Annotated[
        AwareDatetime | None, Query(description="started failing at or after (ISO 8601)")
    ] = None,
    failing_before: Annotated[
        AwareDatetime | None, Query(description="started failing at or before (ISO 8601)")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return app.read.list_subscriptions(
        status=status,
        customer_id=customer_id,
        failure=failure,
        failing_since=failing_since,
        failing_before=failing_before,
        limit=limit,
        offset=offset,
    )


@subscriptions.get("/{subscription_id}", response_model=schemas.SubscriptionDetail)
def show_subscription(subscription_id: Id, _who: Reader, app: Services) -> dict[str, Any]:
    """With its invoices, attempts, refunds, events and the dunning timeline in words."""
    return app.read.show_subscription(subscription_id)


@subscriptions.patch("/{subscription_id}", response_model=schemas.SubscriptionOut)
def update_subscription(
    subscription_id: Id, body: schemas.UpdateSubscription, who: Lifecycle, app: Services
) -> dict[str, Any]:
    return app.actions.subscriptions.update(
        subscription_id,
        actor=who.name,
        reason=body.reason,
        amount=body.amount,
        schedule=body.schedule,
        timezone=body.timezone,
        description=body.description,
        currency=body.currency,
        customer_email=body.customer_email,
        customer_phone=body.customer_phone,
    )


@subscriptions.post("/{subscription_id}/binding", response_model=schemas.SubscriptionOut)
def set_binding(
    subscription_id: Id, body: schemas.SetBinding, who: Lifecycle, app: Services
) -> dict[str, Any]:
    """A new card: a subscription waiting for one is retried at once."""
    return app.actions.subscriptions.set_binding(
        subscription_id, body.binding_id, actor=who.name, reason=body.reason
    )


@subscriptions.post("/{subscription_id}/pause", response_model=schemas.SubscriptionChange)
def pause(
    subscription_id: Id, body: schemas.ReasonOnly, who: Lifecycle, app: Services
) -> dict[str, Any]:
    """No new invoices and no charges until resumed."""
    return app.actions.pausing.pause(subscription_id, actor=who.name, reason=body.reason)


@subscriptions.post("/{subscription_id}/resume", response_model=schemas.SubscriptionChange)
def resume(
    subscription_id: Id, body: schemas.ReasonOnly, who: Lifecycle, app: Services
) -> dict[str, Any]:
    """Undo a pause (paused periods are not billed) or a cancellation at period end."""
    return app.actions.pausing.resume(subscription_id, actor=who.name, reason=body.reason)


@subscriptions.post("/{subscription_id}/cancel", response_model=schemas.SubscriptionChange)
def cancel(
    subscription_id: Id, body: schemas.Cancel, who: Lifecycle, app: Services
) -> dict[str, Any]:
    return app.actions.pausing.cancel(
        subscription_id, actor=who.name, reason=body.reason, at_period_end=body.at_period_end
    )
