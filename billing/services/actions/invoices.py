"""What operators do to an invoice: void it (nobody owes it) or write it off (owed, not
collected).

A charge that may already be at the gateway is never overridden: closing its invoice is
refused until it settles. This module never calls the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from billing.domain.model import (
    SENT_STATES,
    InvoiceStatus,
)
from billing.errors import (
    ConflictError,
)
from billing.services.audit import clean_actor, clean_reason
from billing.services.lifecycle import (
    close_invoice,
    hold_pending,
    lock_invoice,
    lock_subscription,
    recover_if_nothing_fails,
)
from billing.services.ports import Clock, system_clock
from billing.services.read.views import (
    invoice_summary,
)
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
)


@dataclass(frozen=True)
class InvoiceActions:
    """Void and write off invoices."""

    db: Database
    clock: Clock = system_clock

    def void(self, invoice_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Nobody owes this invoice (a mistake, a goodwill gesture)."""
        return self._close(invoice_id, InvoiceStatus.VOID, actor, reason)

    def write_off(self, invoice_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """The invoice is owed but will not be collected: ``uncollectible``."""
        return self._close(invoice_id, InvoiceStatus.UNCOLLECTIBLE, actor, reason)

    def _close(self, invoice_id: int, to: InvoiceStatus, actor: str, reason: str) -> dict[str, Any]:
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            invoice = lock_invoice(session, invoice_id)
            if invoice.status == InvoiceStatus.PAID:
                raise ConflictError(
                    f"invoice {invoice_id} is paid: refund its payment instead of closing it"
                )
            if invoice.status != InvoiceStatus.OPEN:
                raise ConflictError(f"invoice {invoice_id} is already {invoice.status}")
            sent = session.scalars(
                select(ChargeAttempt).where(
                    ChargeAttempt.invoice_id == invoice_id,
                    ChargeAttempt.state.in_(SENT_STATES),
                )
            ).first()
            if sent is not None:
                raise ConflictError(
                    f"invoice {invoice_id} has a charge in flight (attempt {sent.id}, "
                    f"{sent.state}); wait until it settles"
                )
            hold_pending(session, invoice.subscription_id, invoice.id, now, f"invoice_{to}", actor)
            close_invoice(session, invoice, to, now, actor, reason)
            sub = lock_subscription(session, invoice.subscription_id)
            recover_if_nothing_fails(session, sub, now, actor, f"invoice {invoice_id} {to}")
            return invoice_summary(invoice)
