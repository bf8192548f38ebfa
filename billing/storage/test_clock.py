"""The test clock: one time stored in the database (row 1 of ``test_clock``) that every
process reads in test mode, so the scheduler, workers, API and events move together.

Reads go through a small engine of their own, outside any transaction (the clock is read
inside the callers' transactions; SQLite's write lock must not wait on itself), fresh on
every call (a cached value outlives a move of the clock). Decides nothing about when to
move it (billing.services.test_clock does, refusing outside test mode). Must never be
built outside test mode. Before the first ``set`` it reads the wall clock.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, text

from billing.storage.database import Database
from billing.storage.outbox_tables import TestClock


class DatabaseClock:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        # Read on every call: a value cached even for half a second outlived a move of the
        # clock (a worker recorded March's payment at February's time).
        value = self._read()
        return value if value is not None else datetime.now(UTC)

    def _read(self) -> datetime | None:
        with self._lock:
            if self._engine is None:
                self._engine = create_engine(self.db.engine.url, pool_size=1, max_overflow=2)
        with self._engine.connect() as connection:
            if self.db.is_sqlite:
                connection.exec_driver_sql("PRAGMA busy_timeout=30000")
            row = connection.execute(text("SELECT now FROM test_clock WHERE id = 1")).first()
            connection.rollback()
        if row is None:
            return None
        value = row[0]
        if isinstance(value, str):  # SQLite keeps text
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

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

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
