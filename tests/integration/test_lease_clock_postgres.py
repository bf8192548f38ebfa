"""The send lease's clock on PostgreSQL: the server's time, whatever the host's clock says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.services.lease import database_lease_clock
from billing.storage.database import Database

pytestmark = pytest.mark.integration


def test_the_lease_clock_reads_the_database_servers_time(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        before = datetime.now(UTC)
        with db.transaction() as session:
            first = database_lease_clock(session)
            second = database_lease_clock(session)
        after = datetime.now(UTC)
    finally:
        db.dispose()
    assert first.tzinfo is not None and first.utcoffset() == timedelta(0)
    # the same host here, so the server's clock agrees with ours to within a second
    assert before - timedelta(seconds=1) <= first <= after + timedelta(seconds=1)
    assert second >= first  # it moves within a transaction (clock_timestamp, not now())
