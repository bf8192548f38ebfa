"""Who changed what, and why: the event log written in the same transaction as each change.

Every state change, by the machine or by a person, writes one ``events`` row here with its
actor and reason, and stages its public event (billing.services.outbox), written at commit.
This module must never commit on its own: the caller's transaction
carries the event and the change together, or neither.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from billing.errors import ValidationError
from billing.services.outbox import EVENT_COLUMNS, stage, stage_values
from billing.storage.bulk import bulk_insert
from billing.storage.tables import Event

#: Actors that are the machine itself; everyone else's events form the audit log.
SYSTEM_ACTORS = ("system", "scheduler", "gateway")
MAX_REASON = 500
_FAILURE = re.compile(r"^[a-z0-9_]{1,64}$")


def record_event(
    session: Session,
    at: datetime,
    kind: str,
    reason: str,
    *,
    subscription_id: int | None = None,
    invoice_id: int | None = None,
    attempt_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    actor: str = "system",
) -> None:
    event = Event(
        at=at,
        kind=kind,
        reason=reason,
        subscription_id=subscription_id,
        invoice_id=invoice_id,
        attempt_id=attempt_id,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
    )
    session.add(event)
    stage(session, event)


def record_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """:func:`record_event` for many changes at once (one insert): each dict has ``at``,
    ``kind``, ``reason`` and optionally the ids, states and ``actor``."""
    rows: list[dict[str, Any]] = [
        {key: event.get(key) for key in EVENT_COLUMNS} | {"actor": event.get("actor", "system")}
        for event in events
    ]
    bulk_insert(session, Event, rows)
    for row in rows:
        stage_values(session, row)


def clean_reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise ValidationError("reason is required: say why (it is kept in the audit log)")
    if len(text) > MAX_REASON:
        raise ValidationError(f"reason must be at most {MAX_REASON} characters")
    return text


def clean_actor(actor: str) -> str:
    text = actor.strip()
    if not text:
        raise ValidationError("actor must not be empty")
    return text[:64]


def clean_failure(failure: str) -> str:
    text = failure.strip().lower()
    if not _FAILURE.match(text):
        raise ValidationError(
            "failure must be a category (e.g. soft_decline) or a reason slug "
            "(e.g. insufficient_funds): lower-case letters, digits and '_'"
        )
    return text
