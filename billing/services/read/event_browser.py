"""The public events as an operator browses them in the console: newest first, filtered by
type and subscription, a page at a time; one event with its payload and its webhook
deliveries.

Decides: which page of events comes before a cursor (the outbox row id) and which filters
are acceptable (one clear error otherwise). Must never write, and never show a signing
secret (deliveries are shown without their endpoint's secret).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from billing.domain.public_events import parse_types
from billing.errors import NotFoundError, ValidationError
from billing.services.read.events import parse_cursor
from billing.services.read.views import iso
from billing.storage.database import Database
from billing.storage.outbox_tables import OutboxEvent, WebhookDelivery, WebhookEndpoint

MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class RecentEvents:
    rows: list[dict[str, Any]]
    #: The cursor of the next (older) page, or None when this is the last.
    older: str | None


def recent_events(
    db: Database,
    *,
    types: str | None = None,
    subscription_id: int | None = None,
    before: str | None = None,
    limit: int = 50,
) -> RecentEvents:
    """Events older than ``before`` (newest first), of the given types and subscription."""
    cursor = parse_cursor(before)
    try:
        wanted = parse_types(types)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if subscription_id is not None and not 1 <= subscription_id <= MAX_ID:
        raise ValidationError(f"{subscription_id} is not a subscription id")
    query = select(OutboxEvent)
    if cursor:
        query = query.where(OutboxEvent.id < cursor)
    if wanted:
        query = query.where(OutboxEvent.type.in_(wanted))
    if subscription_id is not None:
        query = query.where(OutboxEvent.subscription_id == subscription_id)
    with db.transaction() as session:
        found = list(session.scalars(query.order_by(OutboxEvent.id.desc()).limit(limit + 1)))
        rows = [_row(e) for e in found[:limit]]
    older = str(found[limit - 1].id) if len(found) > limit else None
    return RecentEvents(rows, older)


def event_detail(db: Database, public_id: str) -> dict[str, Any]:
    """One event (by its public id) with its payload, pretty-printed, and its deliveries."""
    if not public_id.isascii() or len(public_id) > 40:
        raise NotFoundError("no such event")
    with db.transaction() as session:
        event = session.scalar(select(OutboxEvent).where(OutboxEvent.public_id == public_id))
        if event is None:
            raise NotFoundError(f"event {public_id} does not exist")
        deliveries = session.execute(
            select(WebhookDelivery, WebhookEndpoint.url)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.event_id == event.id)
            .order_by(WebhookDelivery.id)
        ).all()
        return _row(event) | {
            "payload": json.dumps(json.loads(event.payload), indent=2, sort_keys=True),
            "deliveries": [
                {
                    "id": d.id,
                    "endpoint_id": d.endpoint_id,
                    "url": url,
                    "state": d.state,
                    "tries": d.tries,
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                    "next_try_at": iso(d.next_try_at),
                    "delivered_at": iso(d.delivered_at),
                }
                for d, url in deliveries
            ],
        }


def _row(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "type": event.type,
        "subscription_id": event.subscription_id,
        "sequence": event.sequence,
        "created_at": iso(event.created_at),
        "livemode": event.livemode,
        "dispatched": event.dispatched_at is not None,
    }
