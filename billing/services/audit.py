"""Who changed what, and why: the event log written in the same transaction as each change.

Every state change, by the machine or by a person, writes one ``events`` row here with its
actor and reason. This module must never commit on its own: the caller's transaction
carries the event and the change together, or neither.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from billing.storage.tables import Event


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
    session.add(
        Event(
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
    )
