"""Month start on PostgreSQL: the first charges leave while the burst is still being
invoiced, and every claim a pass repeats per batch can be served in key order from an index
(no sort of every due row, no scan of every attempt or of every event already dispatched):
the cost of a batch does not grow with the burst."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.domain.webhooks import SendResult
from billing.services.actions.subscriptions import SubscriptionActions
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.services.pipeline.webhook_delivery import WebhookDelivering
from billing.services.webhook_ports import NoWebhookQueue
from billing.storage.database import Database
from billing.storage.outbox_tables import OutboxEvent
from billing.storage.tables import ChargeAttempt, Invoice
from tests.support.fakes import ManualClock, RecordingDispatcher

POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning.toml"


def _subscribe(db: Database, clock: ManualClock, count: int) -> None:
    actions = SubscriptionActions(db, clock=clock)
    for n in range(count):
        actions.create(
            NewSubscription(
                customer_id=f"c{n}",
                binding_id=f"approve-{n}",
                amount=1000,
                schedule="0 3 1 * *",
                timezone="UTC",
                start_at=clock(),  # every one due at the same instant, as on the 1st
            ),
            actor="crm",
            reason="signup",
        )


class CountingDispatcher(RecordingDispatcher):
    """Records, at each enqueue, how many invoices the pass had opened by then."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.invoices_at_enqueue: list[int] = []

    def charge(self, attempt_ids: Sequence[int]) -> None:
        with self.db.transaction() as session:
            self.invoices_at_enqueue.append(session.scalar(select(func.count(Invoice.id))) or 0)
        super().charge(attempt_ids)


@pytest.fixture
def burst(pg_url: str) -> Iterator[tuple[Database, ManualClock]]:
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    db = Database(pg_url)
    _subscribe(db, clock, 120)
    yield db, clock
    db.dispose()


def test_the_first_charges_leave_before_the_whole_burst_is_invoiced(
    burst: tuple[Database, ManualClock],
) -> None:
    db, clock = burst
    dispatcher = CountingDispatcher(db)
    scheduler = Scheduler(
        db, dispatcher, load_policy(POLICY), clock=clock, batch_size=10,
        open_before_charging=30,
    )  # fmt: skip
    report = scheduler.run_pass()
    assert report.invoices_opened == report.attempts_created == 120
    assert dispatcher.invoices_at_enqueue[0] <= 40  # not after all 120
    assert sorted(dispatcher.charges) == sorted(set(dispatcher.charges))  # each once
    with db.transaction() as session:
        per_invoice = session.execute(
            select(ChargeAttempt.invoice_id, func.count()).group_by(ChargeAttempt.invoice_id)
        ).all()
    assert len(per_invoice) == 120 and {n for _, n in per_invoice} == {1}


class _NoSender:
    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> SendResult:  # pragma: no cover - no endpoint is registered
        raise AssertionError("no webhook endpoint exists")


def _capture(db: Database, marks: dict[str, str]) -> dict[str, list[tuple[str, Any]]]:
    """Every statement run on ``db`` whose text holds one of ``marks``' values."""
    seen: dict[str, list[tuple[str, Any]]] = {name: [] for name in marks}

    def record(conn: Connection, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        for name, mark in marks.items():
            if mark in statement:
                seen[name].append((statement, params))

    event.listen(db.engine, "before_cursor_execute", record)
    return seen


def _plan_nodes(db: Database, statement: str, params: Any) -> list[dict[str, Any]]:
    """The plan's nodes when sorting and full scans cost "infinity": a Sort or a Seq Scan
    left in it means no index can serve the claim in key order."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_sort = off")
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
        plan = cursor.fetchone()[0]
        raw.rollback()
    finally:
        raw.close()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


#: claim → (a mark of its statement, the index that serves it, its keyset condition)
CLAIMS = {
    "subscriptions": (
        "SELECT subscriptions.id, subscriptions.next_charge_at, subscriptions.schedule",
        "ix_subscriptions_billable_due",
        "(subscriptions.next_charge_at, subscriptions.id) > (",
    ),
    "invoices": (
        "SELECT invoices.id, invoices.subscription_id, invoices.attempt_count",
        "ix_invoices_due",
        "(invoices.next_attempt_at, invoices.id) > (",
    ),
    "outbox": (
        "WHERE outbox_events.dispatched_at IS NULL",
        "ix_outbox_events_undispatched",
        "outbox_events.id > ",
    ),
}


def test_each_claim_of_a_month_start_pass_reads_its_batch_in_index_order(
    burst: tuple[Database, ManualClock],
) -> None:
    db, clock = burst
    marks = {name: mark for name, (mark, _, _) in CLAIMS.items()}
    marks["manual"] = "charge_attempts.trigger ="
    marks["requeue"] = "charge_attempts.enqueued_at IS NULL"
    seen = _capture(db, marks)
    policy = load_policy(POLICY)
    scheduler = Scheduler(db, RecordingDispatcher(), policy, clock=clock, batch_size=25)
    assert scheduler.run_pass().attempts_created == 120
    relay = WebhookDelivering(db, _NoSender(), NoWebhookQueue(), clock=clock, batch_size=25)
    relay.run_pass()
    for name, (_, index, keyset) in CLAIMS.items():
        claims = [s for s in seen[name] if "FOR UPDATE" in s[0]]
        assert len(claims) >= 4, name  # paged: several batches
        later = claims[2]  # a batch after others were claimed: it pages by its cursor
        nodes = _plan_nodes(db, *later)
        kinds = {n["Node Type"] for n in nodes}
        assert not kinds & {"Sort", "Incremental Sort", "Seq Scan"}, (name, kinds)
        assert index in {n.get("Index Name") for n in nodes}, (name, nodes)
        assert keyset in later[0], name  # it pages: the batch starts after the last one
    for name, index in (
        ("manual", "ix_charge_attempts_manual_in_flight"),
        ("requeue", "ix_charge_attempts_pending_enqueued"),
    ):
        nodes = _plan_nodes(db, *seen[name][-1])
        assert "Seq Scan" not in {n["Node Type"] for n in nodes}, name
        assert index in {n.get("Index Name") for n in nodes}, (name, nodes)
    with db.transaction() as session:
        undispatched = session.scalar(
            select(func.count(OutboxEvent.id)).where(OutboxEvent.dispatched_at.is_(None))
        )
    assert undispatched == 0  # the relay paged through every event once
