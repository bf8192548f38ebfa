"""What a verified gateway callback does: find the attempt, enqueue a re-check of its order.

A callback is only a hint. :class:`CallbackHandler` finds the attempt the notification is
about (by ``orderNumber``, else by ``gateway_order_id == mdOrder``), records an event and
asks the dispatcher to reconcile it; the worker then asks the gateway for the order
status. It never marks anything paid or failed, never changes an invoice, and never
trusts the callback's own status. Parsing and checksum verification happen before, in
:mod:`billing.entrypoints.http.callbacks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.services.audit import record_event
from billing.services.ports import Clock, Dispatcher
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt

log = logging.getLogger("billing.callbacks")

_SHOWN = 64  # characters of a received value shown in logs and events


@dataclass(frozen=True)
class Notification:
    """The fields of a verified callback that matter here (values as received)."""

    order_number: str | None
    md_order: str | None
    operation: str
    status: str

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Notification:
        return cls(
            order_number=params.get("orderNumber") or None,
            md_order=params.get("mdOrder") or None,
            operation=params.get("operation", ""),
            status=params.get("status", ""),
        )

    @property
    def key(self) -> tuple[str | None, str | None, str, str]:
        return (self.order_number, self.md_order, self.operation, self.status)

    def describe(self) -> str:
        return (
            f"operation {shown(self.operation or '?')}, status {shown(self.status or '?')}"
            f" (orderNumber {shown(self.order_number)}, mdOrder {shown(self.md_order)})"
        )


def shown(value: str | None) -> str:
    """A received value made safe for one log line: quoted, escaped, truncated."""
    if value is None:
        return "-"
    text = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
    return repr(text)


# -- acting on a verified callback ------------------------------------------------------------


class CallbackHandler:
    """Finds the attempt a verified callback is about and enqueues its re-check (sync)."""

    def __init__(self, db: Database, dispatcher: Dispatcher, *, clock: Clock) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.clock = clock

    def handle(self, note: Notification) -> str:
        """``"enqueued"`` or ``"unknown_order"``; BrokerError/StorageError propagate."""
        now = self.clock()
        mismatch = False
        with self.db.transaction() as session:
            attempt = _find_attempt(session, note)
            if attempt is None:
                record_event(
                    session,
                    now,
                    "callback_unknown_order",
                    f"gateway callback for no known attempt: {note.describe()}",
                    actor="gateway",
                )
                found = None
            else:
                found = (attempt.id, attempt.subscription_id, attempt.invoice_id)
                mismatch = (
                    note.md_order is not None
                    and attempt.gateway_order_id is not None
                    and attempt.gateway_order_id != note.md_order
                )
        if found is None:
            log.warning("callback for an unknown order: %s", note.describe())
            return "unknown_order"
        attempt_id, subscription_id, invoice_id = found
        if mismatch:
            log.warning(
                "callback for attempt %s names another mdOrder than recorded: %s",
                attempt_id,
                note.describe(),
            )
        self.dispatcher.reconcile([attempt_id])  # after the read: no lock held over the broker
        reason = f"gateway callback: {note.describe()}; order status re-check enqueued"
        if mismatch:
            reason += " (mdOrder differs from the one recorded)"
        with self.db.transaction() as session:
            record_event(
                session,
                now,
                "callback_received",
                reason,
                subscription_id=subscription_id,
                invoice_id=invoice_id,
                attempt_id=attempt_id,
                actor="gateway",
            )
        log.info("callback: attempt %s re-check enqueued (%s)", attempt_id, note.describe())
        return "enqueued"


def _find_attempt(session: Session, note: Notification) -> ChargeAttempt | None:
    if note.order_number is not None:
        attempt = session.scalars(
            select(ChargeAttempt).where(ChargeAttempt.order_number == note.order_number)
        ).one_or_none()
        if attempt is not None:
            return attempt
    if note.md_order is not None:
        return session.scalars(
            select(ChargeAttempt)
            .where(ChargeAttempt.gateway_order_id == note.md_order)
            .order_by(ChargeAttempt.id.desc())
            .limit(1)
        ).one_or_none()
    return None
