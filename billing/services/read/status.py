"""What an operator asks first: is charging running (for each merchant account), and what
needs attention. Reads only; it never shows a credential."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.circuit_breaker import Circuit
from billing.domain.model import AttemptState
from billing.storage.circuit_row import DEFAULT_ACCOUNT, load_circuits
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription


def system_status(
    db: Database, accounts: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Counts, what needs a person, and each merchant account's charging state.
    ``accounts``: the configured accounts and what may be shown of them (dialect, flags)."""
    accounts = accounts or {DEFAULT_ACCOUNT: {}}
    with db.transaction() as session:
        circuits = load_circuits(session)
        per_account = dict(
            session.execute(
                select(Subscription.merchant_account, func.count()).group_by(
                    Subscription.merchant_account
                )
            ).all()
        )
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
    merchants = [
        _account(name, circuits.get(name, Circuit()), per_account.get(name, 0), info)
        for name, info in {**{n: None for n in per_account}, **accounts}.items()
    ]
    return {
        "charging": _overall(merchants),
        "merchant_accounts": sorted(
            merchants, key=lambda m: (m["name"] != DEFAULT_ACCOUNT, m["name"])
        ),
        "subscriptions": subs,
        "invoices": invoices,
        "attempts": attempts,
        "needs_operator": attempts.get(AttemptState.NEEDS_OPERATOR.value, 0),
        "needs_refund": refunds or 0,
    }


def account_states(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Each merchant account known to the database (its breaker or its subscriptions), the
    default one first: running or paused, why, until when, how many subscriptions."""
    circuits = load_circuits(session)
    counts = dict(
        session.execute(
            select(Subscription.merchant_account, func.count()).group_by(
                Subscription.merchant_account
            )
        ).all()
    )
    names = sorted({DEFAULT_ACCOUNT, *circuits, *counts}, key=lambda n: (n != DEFAULT_ACCOUNT, n))
    rows = []
    for name in names:
        circuit = circuits.get(name, Circuit())
        rows.append(
            {
                "name": name,
                "state": "running" if circuit.allows_charging(now) else "paused",
                "reason": circuit.reason,
                "retry_at": circuit.retry_at,
                "subscriptions": counts.get(name, 0),
            }
        )
    return rows


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _state(circuit: Circuit, *, configured: bool) -> str:
    if not configured:
        return "not_configured"
    return "running" if circuit.state == "closed" else "paused"


def _account(
    name: str, circuit: Circuit, subscriptions: int, info: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One merchant account's line: its breaker, its subscriptions, what is configured."""
    return {
        "name": name,
        "configured": info is not None,
        **(info or {}),
        "state": _state(circuit, configured=info is not None),
        "reason": circuit.reason
        if info is not None
        else "not configured in the settings: its subscriptions are not charged",
        "retry_at": _iso(circuit.retry_at),
        "consecutive_failures": circuit.consecutive_failures,
        "subscriptions": subscriptions,
    }


def _overall(merchants: list[dict[str, Any]]) -> dict[str, Any]:
    """``running`` when every account charges; ``paused`` when none does (with the first
    reason); ``partly_paused`` naming the paused accounts otherwise."""
    paused = [m for m in merchants if m["state"] != "running"]
    if not paused:
        return {"state": "running", "reason": None, "retry_at": None, "consecutive_failures": 0}
    first = min(paused, key=lambda m: m["retry_at"] or "")
    some = len(paused) < len(merchants)
    reason = (
        "; ".join(f"{m['name']}: {m['reason']}" for m in paused)
        if some or len(merchants) > 1
        else first["reason"]
    )
    return {
        "state": "partly_paused" if some else "paused",
        "reason": reason,
        "retry_at": first["retry_at"],
        "consecutive_failures": max(m["consecutive_failures"] for m in merchants),
        "paused_accounts": [m["name"] for m in paused],
    }
