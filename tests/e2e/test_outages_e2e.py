"""PostgreSQL drops every connection while charges run: the scheduler and the workers
reconnect by themselves and every invoice is still charged exactly once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL
from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e


def _kill_connections(database: str) -> int:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            ).scalar_one()
        return int(killed)
    finally:
        engine.dispose()


def test_lost_database_connections_do_not_lose_or_double_a_charge(stack: Stack) -> None:
    database = stack.env["BILLING_DATABASE_URL"].rsplit("/", 1)[1]
    ids = [stack.subscribe(f"slow-outage-{n:03d}", customer=f"c{n}") for n in range(12)]
    stack.start("worker", "worker")
    stack.start("scheduler", "scheduler")
    killed = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # a "restart" every half second, for six seconds
        killed += _kill_connections(database)
        time.sleep(0.5)
    assert killed > 0
    wait_until(
        lambda: all(stack.show(i)["invoices"][0]["status"] == "paid" for i in ids),
        90,
        "every invoice to be paid after the outage",
    )
    assert len(stack.ledger("DEPOSITED")) == len(ids)
    assert len({o["orderNumber"] for o in stack.ledger()}) == len(stack.ledger())
    for name in ("worker", "scheduler"):
        assert stack.processes[name].poll() is None, f"{name} died during the outage"
