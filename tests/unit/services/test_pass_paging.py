"""A pass pages through a month-start burst a batch at a time (keyset cursors): on the
embedded SQLite too, every due subscription gets its invoice and every due invoice its one
attempt in one pass, whether they fall due at the same instant or not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from billing.storage.tables import ChargeAttempt, Invoice
from tests.support.world import ServiceWorld, sqlite_url


def test_one_pass_opens_and_charges_every_due_subscription_in_small_batches(
    tmp_path: Path,
) -> None:
    with ServiceWorld.fast(sqlite_url(tmp_path), scheduler_batch_size=3) as world:
        now = world.clock()
        ids = [world.subscribe(customer_id=f"same-{n}") for n in range(7)]  # one instant
        ids += [
            world.subscribe(customer_id=f"past-{n}", start_at=now - timedelta(minutes=n + 1))
            for n in range(5)
        ]  # each at its own earlier time
        report = world.scheduler.run_pass()
        assert report.invoices_opened == report.attempts_created == 12
        with world.db.transaction() as session:
            invoiced = {i.subscription_id for i in session.query(Invoice)}
            attempts = [a.invoice_id for a in session.query(ChargeAttempt)]
        assert invoiced == set(ids)
        assert len(attempts) == len(set(attempts)) == 12  # one attempt per invoice
        assert sorted(world.dispatcher.charges) == sorted(set(world.dispatcher.charges))
        assert world.scheduler.run_pass().attempts_created == 0  # nothing left behind
