"""The circuit breaker's one row: load and save the pure :class:`Circuit` state.

The decisions live in :mod:`billing.domain.circuit_breaker`; this module only stores them.
It must never decide whether charging is paused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.domain.circuit_breaker import Circuit, CircuitState
from billing.storage.tables import GatewayCircuit

CIRCUIT_ROW = 1


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
