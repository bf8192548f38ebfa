"""Small storage helpers shared by the use cases: events and the circuit row."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.circuit import Circuit, CircuitState
from billing.storage.tables import Event, GatewayCircuit

CIRCUIT_ROW = 1


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


def new_order_number(invoice_id: int, attempt_number: int) -> str:
    """A fresh gateway orderNumber (≤ 32 chars): readable ids plus randomness, so a
    number is never reused even if the database is rebuilt against the same merchant."""
    number = f"{invoice_id}-{attempt_number}-{secrets.token_hex(5)}"
    if len(number) > 32:
        number = f"{secrets.token_hex(16)}"
    return number


def _ensure_circuit_row(session: Session) -> None:
    """Create the single breaker row if missing; concurrent creators do not collide."""
    dialect = session.get_bind().dialect.name
    insert_: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_(GatewayCircuit)
        .values(id=CIRCUIT_ROW, state="closed", consecutive_failures=0, trips=0)
        .on_conflict_do_nothing(index_elements=["id"])
    )


def load_circuit(session: Session, *, for_update: bool = False) -> Circuit:
    query = select(GatewayCircuit).where(GatewayCircuit.id == CIRCUIT_ROW)
    if for_update:
        _ensure_circuit_row(session)  # so that the lock below always has a row to hold
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        return Circuit()
    return Circuit(
        state=CircuitState(row.state),
        consecutive_failures=row.consecutive_failures,
        trips=row.trips,
        reason=row.reason,
        opened_at=row.opened_at,
        retry_at=row.retry_at,
    )


def save_circuit(session: Session, circuit: Circuit, now: datetime) -> None:
    _ensure_circuit_row(session)
    row = session.get_one(GatewayCircuit, CIRCUIT_ROW, with_for_update=True, populate_existing=True)
    row.state = circuit.state.value
    row.consecutive_failures = circuit.consecutive_failures
    row.trips = circuit.trips
    row.reason = circuit.reason
    row.opened_at = circuit.opened_at
    row.retry_at = circuit.retry_at
    row.updated_at = now
