"""What people and the backend read: lists, one entity with its history, the audit log,
the system's status. Read-only: nothing here writes, and every list is bounded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select

from billing.domain.dunning_policy import DunningPolicy
from billing.domain.model import (
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.errors import (
    NotFoundError,
    ValidationError,
)
from billing.gateway.classify_action import RefundState
from billing.services.audit import (
    SYSTEM_ACTORS,
    clean_failure,
)
from billing.services.ports import Clock, system_clock
from billing.services.read.processes import process_status
from billing.services.read.refunded import with_display_status
from billing.services.read.status import system_status
from billing.services.read.timeline import describe_timeline
from billing.services.read.views import (
    event_view,
    invoice_summary,
    invoice_view,
    refund_view,
    subscription_summary,
)
from billing.storage.database import Database
from billing.storage.tables import (
    ChargeAttempt,
    Event,
    Invoice,
    Refund,
    Subscription,
)

MAX_LIST = 1000


#: A heartbeat older than this is not a live process (``BILLING_HEARTBEAT_MAX_AGE`` in
#: the CLI; the API uses this default).
HEARTBEAT_MAX_AGE = timedelta(seconds=60)


@dataclass(frozen=True)
class Reads:
    """The read side shared by the CLI, the HTTP API and the console."""

    db: Database
    policy: DunningPolicy
    clock: Clock = system_clock

    def list_subscriptions(
        self,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        failure: str | None = None,
        failing_since: datetime | None = None,
        failing_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Subscriptions, optionally only those whose open invoice fails with ``failure``
        (a category or a reason) and started failing at/after ``failing_since`` and at/before
        ``failing_before``."""
        if status is not None and status not in {s.value for s in SubscriptionStatus}:
            choices = ", ".join(s.value for s in SubscriptionStatus)
            raise ValidationError(f"unknown status {status!r}; choose one of {choices}")
        limit = max(1, min(limit, MAX_LIST))
        query = select(Subscription).order_by(Subscription.id).limit(limit).offset(max(offset, 0))
        if status is not None:
            query = query.where(Subscription.status == status)
        if customer_id is not None:
            query = query.where(Subscription.customer_id == customer_id)
        conditions = []
        if failure is not None:
            value = clean_failure(failure)
            conditions.append(or_(Invoice.last_category == value, Invoice.last_reason == value))
        if failing_since is not None:
            conditions.append(Invoice.failing_since >= failing_since)
        if failing_before is not None:
            conditions.append(Invoice.failing_since <= failing_before)
        if conditions:
            query = query.where(
                exists().where(
                    Invoice.subscription_id == Subscription.id,
                    Invoice.status == InvoiceStatus.OPEN,
                    Invoice.failing_since.is_not(None),
                    *conditions,
                )
            )
        with self.db.transaction() as session:
            return [subscription_summary(s) for s in session.scalars(query)]

    def show_subscription(self, subscription_id: int) -> dict[str, Any]:
        """The subscription with its invoices, attempts, refunds, events and timeline lines."""
        with self.db.transaction() as session:
            sub = session.get(Subscription, subscription_id)
            if sub is None:
                raise NotFoundError(f"subscription {subscription_id} does not exist")
            view = subscription_summary(sub)
            invoices = session.scalars(
                select(Invoice).where(Invoice.subscription_id == sub.id).order_by(Invoice.id)
            ).all()
            attempts = session.scalars(
                select(ChargeAttempt)
                .where(ChargeAttempt.subscription_id == sub.id)
                .order_by(ChargeAttempt.id)
            ).all()
            events = session.scalars(
                select(Event).where(Event.subscription_id == sub.id).order_by(Event.id)
            ).all()
            refunds = session.scalars(
                select(Refund).where(Refund.subscription_id == subscription_id).order_by(Refund.id)
            ).all()
            view["invoices"] = [
                invoice_view(i, [a for a in attempts if a.invoice_id == i.id]) for i in invoices
            ]
            view["events"] = [event_view(e) for e in events]
            view["refunds"] = [refund_view(r) for r in refunds]
        view["timeline"] = describe_timeline(self.db, subscription_id, self.clock(), self.policy)
        return with_display_status(view)

    def timeline(self, subscription_id: int) -> list[str]:
        return describe_timeline(self.db, subscription_id, self.clock(), self.policy)

    def list_invoices(
        self,
        *,
        status: str | None = None,
        subscription_id: int | None = None,
        failure: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        if status is not None and status not in {s.value for s in InvoiceStatus}:
            choices = ", ".join(s.value for s in InvoiceStatus)
            raise ValidationError(f"unknown invoice status {status!r}; choose one of {choices}")
        query = (
            select(Invoice)
            .order_by(Invoice.id.desc())
            .limit(max(1, min(limit, MAX_LIST)))
            .offset(max(offset, 0))
        )
        if status is not None:
            query = query.where(Invoice.status == status)
        if subscription_id is not None:
            query = query.where(Invoice.subscription_id == subscription_id)
        if failure is not None:
            value = clean_failure(failure)
            query = query.where(or_(Invoice.last_category == value, Invoice.last_reason == value))
        with self.db.transaction() as session:
            return [invoice_summary(i) for i in session.scalars(query)]

    def show_invoice(self, invoice_id: int) -> dict[str, Any]:
        with self.db.transaction() as session:
            invoice = session.get(Invoice, invoice_id)
            if invoice is None:
                raise NotFoundError(f"invoice {invoice_id} does not exist")
            attempts = session.scalars(
                select(ChargeAttempt)
                .where(ChargeAttempt.invoice_id == invoice_id)
                .order_by(ChargeAttempt.id)
            ).all()
            refunds = session.scalars(
                select(Refund).where(Refund.invoice_id == invoice_id).order_by(Refund.id)
            ).all()
            events = session.scalars(
                select(Event).where(Event.invoice_id == invoice_id).order_by(Event.id)
            ).all()
            return with_display_status(
                invoice_summary(invoice)
                | invoice_view(invoice, list(attempts))
                | {
                    "refunds": [refund_view(r) for r in refunds],
                    "events": [event_view(e) for e in events],
                }
            )

    def audit(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        subscription_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Changes made by people and the backend (not by the machine), newest first."""
        query = (
            select(Event)
            .where(Event.actor.not_in(SYSTEM_ACTORS))
            .order_by(Event.id.desc())
            .limit(max(1, min(limit, MAX_LIST)))
        )
        if before_id is not None:
            query = query.where(Event.id < before_id)
        if subscription_id is not None:
            query = query.where(Event.subscription_id == subscription_id)
        with self.db.transaction() as session:
            return [event_view(e) for e in session.scalars(query)]

    def status(self) -> dict[str, Any]:
        report = system_status(self.db)
        with self.db.transaction() as session:
            refunds = dict(
                session.execute(select(Refund.state, func.count()).group_by(Refund.state)).all()
            )
        report["refunds"] = refunds
        report["refunds_unknown"] = refunds.get(RefundState.UNKNOWN.value, 0)
        report["processes"] = process_status(self.db, self.clock(), max_age=HEARTBEAT_MAX_AGE)
        return report
