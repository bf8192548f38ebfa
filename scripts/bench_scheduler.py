"""Month-start benchmark: N subscriptions fall due at the same minute.

Prints how long one scheduler pass takes to open the invoices and create the attempts on
PostgreSQL, and how fast the charge messages go onto Redis. Numbers, not assertions.

    .venv/bin/python scripts/bench_scheduler.py --subscriptions 100000
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import create_engine, func, insert, select, text

from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.queue.dramatiq import DramatiqDispatcher, build_broker, declare_actors
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription
from tests.support.fakes import RecordingDispatcher

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--no-redis", action="store_true", help="measure the database only")
    args = parser.parse_args()

    name = f"billing_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    try:
        db.upgrade()
        now = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
        started = time.perf_counter()
        rows = [
            {
                "customer_id": f"c{n}",
                "binding_id": f"approve-{n}",
                "binding_version": 1,
                "amount": 49900,
                "currency": "643",
                "schedule": "0 3 1 * *",
                "timezone": "Europe/Moscow",
                "status": "active",
                "next_charge_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(args.subscriptions)
        ]
        with db.transaction() as session:
            for chunk in range(0, len(rows), 10_000):
                session.execute(insert(Subscription), rows[chunk : chunk + 10_000])
        print(
            f"created {args.subscriptions} due subscriptions in "
            f"{time.perf_counter() - started:.1f}s"
        )

        if args.no_redis:
            dispatcher: RecordingDispatcher | DramatiqDispatcher = RecordingDispatcher()
            broker = None
        else:
            broker = build_broker(args.redis)
            broker.client.flushdb()
            dispatcher = DramatiqDispatcher(declare_actors(broker, lambda: None))  # type: ignore[arg-type,return-value]
        scheduler = Scheduler(
            db, dispatcher, DEFAULT_POLICY, clock=lambda: now, batch_size=args.batch_size
        )
        started = time.perf_counter()
        report = scheduler.run_pass()
        elapsed = time.perf_counter() - started
        with db.transaction() as session:
            invoices = session.scalar(select(func.count()).select_from(Invoice))
            attempts = session.scalar(select(func.count()).select_from(ChargeAttempt))
        print(
            f"one scheduler pass: {elapsed:.1f}s for {invoices} invoices and {attempts} "
            f"attempts ({attempts / elapsed:,.0f} charges enqueued per second; "
            f"batch {args.batch_size}; broker {'none' if broker is None else 'redis'})"
        )
        print(f"report: {report.as_dict()}")
        if broker is not None:
            print(f"messages on Redis: {broker.client.llen('billing:billing')}")
            broker.client.flushdb()
            broker.close()
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
