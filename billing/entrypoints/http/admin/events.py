"""``GET /api/events``: the public events for pollers, oldest first, by cursor.

A receiver that cannot take webhooks pages through the same events the webhooks carry:
``?after=<next_cursor>&type=invoice.paid,invoice.payment_failed&limit=100``. Any token may
read. This module only parses and calls billing.services.read.events; it decides nothing.
"""

from typing import Annotated, Any

from fastapi import Query

from billing.entrypoints.http.admin.auth import Reader
from billing.entrypoints.http.admin.common import Services, router
from billing.services.read.events import MAX_LIMIT, list_events

events = router("/api/events", "events")


@events.get("")
def list_public_events(
    _who: Reader,
    app: Services,
    after: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    type: Annotated[
        str | None, Query(description="comma-separated event types (default: all)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """``{"data": [event, …], "next_cursor": "…", "has_more": bool}``."""
    return list_events(app.db, after=after, types=type, limit=limit).as_dict()
