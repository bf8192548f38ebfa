"""The circuit breakers' rows, one per merchant account: load and save the pure
:class:`Circuit` state by account name.

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

#: The account of today's single-account configuration (BILLING_GATEWAY_*).
DEFAULT_ACCOUNT = "default"


def _ensure_circuit_row(session: Session, account: str) -> None:
    """Create the account's breaker row if missing; concurrent creators do not collide."""
    dialect = session.get_bind().dialect.name
    insert_: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_(GatewayCircuit)
        .values(account=account, state="closed", consecutive_failures=0, trips=0)
        .on_conflict_do_nothing(index_elements=["account"])
    )


def _circuit(row: GatewayCircuit) -> Circuit:
    return Circuit(
        state=CircuitState(row.state),
        consecutive_failures=row.consecutive_failures,
        trips=row.trips,
        reason=row.reason,
        opened_at=row.opened_at,
        retry_at=row.retry_at,
    )


def load_circuit(
    session: Session, account: str = DEFAULT_ACCOUNT, *, for_update: bool = False
) -> Circuit:
    """The breaker of ``account`` (closed when it has no row yet)."""
    query = select(GatewayCircuit).where(GatewayCircuit.account == account)
    if for_update:
        _ensure_circuit_row(session, account)  # so that the lock below always has a row to hold
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    return Circuit() if row is None else _circuit(row)


def load_circuits(session: Session) -> dict[str, Circuit]:
    """Every account's breaker that has a row, by account name."""
    rows = session.scalars(select(GatewayCircuit).order_by(GatewayCircuit.account))
    return {row.account: _circuit(row) for row in rows}


def paused_accounts(session: Session, now: datetime) -> set[str]:
    """The accounts whose charging is paused right now."""
    return {name for name, c in load_circuits(session).items() if not c.allows_charging(now)}


def save_circuit(
    session: Session, circuit: Circuit, now: datetime, account: str = DEFAULT_ACCOUNT
) -> None:
    _ensure_circuit_row(session, account)
    row = session.get_one(GatewayCircuit, account, with_for_update=True, populate_existing=True)
    row.state = circuit.state.value
    row.consecutive_failures = circuit.consecutive_failures
    row.trips = circuit.trips
    row.reason = circuit.reason
    row.opened_at = circuit.opened_at
    row.retry_at = circuit.retry_at
    row.updated_at = now
