"""What an operator asks first: is charging running, and what needs attention."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from billing.domain.model import AttemptState
from billing.storage.circuit_row import load_circuit
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription


def system_status(db: Database) -> dict[str, Any]:
    with db.transaction() as session:
        circuit = load_circuit(session)
        subs = dict(
            session.execute(
                select(Subscription.status, func.count()).group_by(Subscription.status)
            ).all()
        )
        invoices = dict(
            session.execute(select(Invoice.status, func.count()).group_by(Invoice.status)).all()
        )
        attempts = dict(
            session.execute(
                select(ChargeAttempt.state, func.count()).group_by(ChargeAttempt.state)
            ).all()
        )
        refunds = session.scalar(
            select(func.count()).select_from(ChargeAttempt).where(ChargeAttempt.needs_refund)
        )
    return {
        "charging": {
            "state": "running" if circuit.state == "closed" else "paused",
            "reason": circuit.reason,
            "retry_at": circuit.retry_at.isoformat() if circuit.retry_at else None,
            "consecutive_failures": circuit.consecutive_failures,
        },
        "subscriptions": subs,
        "invoices": invoices,
        "attempts": attempts,
        "needs_operator": attempts.get(AttemptState.NEEDS_OPERATOR.value, 0),
        "needs_refund": refunds or 0,
    }
