"""The on-demand reconciliation pass (``billing reconcile``) and what needs a person.

The scheduler loop enqueues status checks as they fall due; this pass settles every
unknown or stale attempt right now, in-line, and lists what no machine may decide:
attempts too old to settle (``needs_operator``) and second charges to refund.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from billing.domain.model import AttemptState
from billing.services.pipeline.charging import Charger
from billing.storage.tables import ChargeAttempt


@dataclass
class ReconcileReport:
    checked: int = 0
    results: Counter[str] = field(default_factory=Counter)
    needs_operator: list[dict[str, Any]] = field(default_factory=list)
    needs_refund: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "results": dict(self.results),
            "needs_operator": self.needs_operator,
            "needs_refund": self.needs_refund,
        }


def _row(attempt: ChargeAttempt) -> dict[str, Any]:
    return {
        "attempt_id": attempt.id,
        "invoice_id": attempt.invoice_id,
        "subscription_id": attempt.subscription_id,
        "order_number": attempt.order_number,
        "gateway_order_id": attempt.gateway_order_id,
        "amount": attempt.amount,
        "currency": attempt.currency,
        "state": attempt.state,
        "reason": attempt.reason,
        "sent_at": attempt.sent_at.isoformat() if attempt.sent_at else None,
    }


def reconcile_now(charger: Charger, *, limit: int = 10_000) -> ReconcileReport:
    """Settle unknown and stale in-flight attempts by order status (staleness on the lease
    clock; re-check those waiting for an operator and those ruled "not received" whose
    re-check is due), then list the rest."""
    report = ReconcileReport()
    with charger.db.transaction() as session:
        lease_now = charger.lease_clock(session)
        stale_before = charger.lease.stale_before(lease_now)
        ids = list(
            session.scalars(
                select(ChargeAttempt.id)
                .where(
                    or_(
                        # needs_operator too: a charge the gateway finished late is recorded
                        # (paid, or flagged as a second charge), never left unflagged
                        ChargeAttempt.state.in_(
                            (AttemptState.UNKNOWN, AttemptState.NEEDS_OPERATOR)
                        ),
                        (ChargeAttempt.state == AttemptState.SENDING)
                        & (ChargeAttempt.sent_at < stale_before),
                        # ruled "not received": the one re-check, once the longest call ended
                        ChargeAttempt.state.in_([AttemptState.FAILED, AttemptState.DECLINED])
                        & (ChargeAttempt.next_check_at <= lease_now),
                    )
                )
                .order_by(ChargeAttempt.id)
                .limit(limit)
            )
        )
    for attempt_id in ids:
        report.results[charger.reconcile(attempt_id)] += 1
    report.checked = len(ids)
    with charger.db.transaction() as session:
        report.needs_operator = [
            _row(a)
            for a in session.scalars(
                select(ChargeAttempt)
                .where(ChargeAttempt.state == AttemptState.NEEDS_OPERATOR)
                .order_by(ChargeAttempt.id)
            )
        ]
        report.needs_refund = [
            _row(a)
            for a in session.scalars(
                select(ChargeAttempt).where(ChargeAttempt.needs_refund).order_by(ChargeAttempt.id)
            )
        ]
    return report
