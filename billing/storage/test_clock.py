"""The test clock: one time stored in the database (row 1 of ``test_clock``) that every
process reads in test mode, so the scheduler, workers, API and events move together.

Decides nothing about when to move it (billing.services.test_clock does, refusing outside
test mode). Must never be built outside test mode. Before the first ``set``/``advance``
it reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from billing.storage.database import Database
from billing.storage.outbox_tables import TestClock


class DatabaseClock:
    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self) -> datetime:
        with self.db.transaction() as session:
            stored = session.scalar(select(TestClock.now).where(TestClock.id == 1))
        return stored if stored is not None else datetime.now(UTC)

    def set(self, when: datetime) -> datetime:
        """Store ``when`` (aware) as the time everyone reads."""
        now = datetime.now(UTC)
        with self.db.transaction() as session:
            row = session.get(TestClock, 1, with_for_update=True)
            if row is None:
                session.add(TestClock(id=1, now=when, updated_at=now))
            else:
                row.now, row.updated_at = when, now
        return when
