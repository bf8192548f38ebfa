"""Gauges computed from the database when Prometheus scrapes (never on the hot path).

One cheap, indexed query per gauge: charging paused (the breaker row), the age of the
oldest due subscription not yet invoiced (``ix_subscriptions_due``), open invoices by the
subscription's status, attempts needing an operator and attempts listed for a refund
(``ix_charge_attempts_state``). It only reads; it must never change a row. A database that
cannot be read gives ``billing_metrics_database_up 0`` and no other gauge, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from billing.domain.model import BILLABLE_STATUSES, AttemptState, InvoiceStatus
from billing.errors import StorageError
from billing.services.ports import Clock, system_clock
from billing.storage.circuit_row import load_circuit
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.metrics")


class DatabaseGauges(Collector):
    """A Prometheus collector over the billing database (register it on a registry)."""

    def __init__(self, db: Database, *, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # metrics are computed at collect time; nothing to query at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "billing_metrics_database_up", "Whether the database gauges could be read."
        )
        try:
            families = self._families()
        except (StorageError, SQLAlchemyError) as exc:
            log.warning("metrics: cannot read the database gauges: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        now = self.clock()
        billable = [status.value for status in BILLABLE_STATUSES]
        with self.db.transaction() as session:
            circuit = load_circuit(session)
            oldest_due = session.scalar(
                select(func.min(Subscription.next_charge_at)).where(
                    Subscription.status.in_(billable), Subscription.next_charge_at <= now
                )
            )
            open_by_status = session.execute(
                select(Subscription.status, func.count())
                .select_from(Invoice)
                .join(Subscription, Subscription.id == Invoice.subscription_id)
                .where(Invoice.status == InvoiceStatus.OPEN.value)
                .group_by(Subscription.status)
            ).all()
            needing_operator = session.scalar(
                select(func.count())
                .select_from(ChargeAttempt)
                .where(ChargeAttempt.state == AttemptState.NEEDS_OPERATOR.value)
            )
            needing_refund = session.scalar(
                select(func.count()).select_from(ChargeAttempt).where(ChargeAttempt.needs_refund)
            )
        paused = GaugeMetricFamily(
            "billing_charging_paused",
            "1 while the circuit breaker pauses charging for everyone.",
            value=0 if circuit.allows_charging(now) else 1,
        )
        backlog = GaugeMetricFamily(
            "billing_due_backlog_seconds",
            "Age of the oldest due subscription not yet invoiced (0 when none is due).",
            value=max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0,
        )
        invoices = GaugeMetricFamily(
            "billing_open_invoices",
            "Open (unpaid) invoices, by their subscription's status.",
            labels=["status"],
        )
        for status, count in open_by_status:
            invoices.add_metric([str(status)], count)
        operator = GaugeMetricFamily(
            "billing_attempts_needing_operator",
            "Attempts whose outcome the gateway never settled: an operator must look.",
            value=needing_operator or 0,
        )
        refunds = GaugeMetricFamily(
            "billing_attempts_needing_refund",
            "Second charges for one invoice, listed for a refund.",
            value=needing_refund or 0,
        )
        return [paused, backlog, invoices, operator, refunds]
