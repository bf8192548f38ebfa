"""The public events, oldest first, for pollers: ``GET /api/events`` and ``billing events list``.

Decides: what page of events follows a cursor (the outbox row id, as text) and which types
it holds. Must never write, and never show an event whose transaction did not commit (the
outbox rows are only ever written by the committing transaction itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from billing.domain.public_events import parse_types
from billing.errors import ValidationError
from billing.storage.database import Database
from billing.storage.outbox_tables import OutboxEvent

MAX_LIMIT = 500


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool

    def as_dict(self) -> dict[str, Any]:
        return {"data": self.events, "next_cursor": self.next_cursor, "has_more": self.has_more}


def parse_cursor(after: str | None) -> int:
    if after is None or after == "":
        return 0
    if not after.isdigit() or len(after) > 18:
        raise ValidationError(f"invalid cursor {after!r}: use the next_cursor of a previous page")
    return int(after)


def list_events(
    db: Database, *, after: str | None = None, types: str | None = None, limit: int = 100
) -> EventPage:
    """Events after ``after`` (oldest first), of the comma-separated ``types`` (all if
    empty), at most ``limit``; ``next_cursor`` continues after the last one shown."""
    cursor = parse_cursor(after)
    try:
        wanted = parse_types(types)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    query = select(OutboxEvent.id, OutboxEvent.payload).where(OutboxEvent.id > cursor)
    if wanted:
        query = query.where(OutboxEvent.type.in_(wanted))
    with db.transaction() as session:
        rows = session.execute(query.order_by(OutboxEvent.id).limit(limit + 1)).all()
    shown = rows[:limit]
    next_cursor = str(shown[-1][0]) if shown else (after or None)
    return EventPage(
        events=[json.loads(payload) for _, payload in shown],
        next_cursor=next_cursor,
        has_more=len(rows) > limit,
    )
