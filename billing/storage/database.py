"""Engine and transactions. Nothing connects until the first transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Select, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from billing.errors import ConfigurationError, StorageError

MIGRATIONS = Path(__file__).parent / "migrations"
#: ``session.info`` key: whether this database is live (False in test mode: public events
#: then carry ``livemode: false``).
LIVEMODE = "billing.livemode"

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _sqlite_setup(engine: Engine) -> None:
    """SQLite: let SQLAlchemy, not pysqlite, manage transactions, and take the write lock
    at BEGIN so concurrent writers queue up instead of failing half-way."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine per process; ``transaction()`` gives a session inside BEGIN…COMMIT."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        try:
            parsed = make_url(url)
        except Exception:
            raise ConfigurationError("invalid BILLING_DATABASE_URL") from None
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": 30})
            _sqlite_setup(self.engine)
        else:
            self.engine = create_engine(
                url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.livemode = True

    @property
    def supports_skip_locked(self) -> bool:
        return self.is_postgres

    def skip_locked(self, query: _Query, *of: Any) -> _Query:
        """A claim: ``query`` with ``FOR UPDATE SKIP LOCKED`` (of the ``of`` tables only,
        when given) on PostgreSQL, so concurrent schedulers and relays take disjoint rows;
        unchanged on SQLite, which takes its write lock at BEGIN."""
        if not self.supports_skip_locked:
            return query
        return query.with_for_update(skip_locked=True, of=list(of) or None)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        Connection failures come out as :class:`StorageError` (should_retry=True).
        """
        try:
            with self._sessions.begin() as session:
                session.info[LIVEMODE] = self.livemode
                yield session
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {type(exc.orig).__name__}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StorageError("database connection lost") from exc
            raise

    def refresh_statistics(self, *tables: str) -> None:
        """PostgreSQL: ANALYZE ``tables`` now (the docs' advice after a bulk load). At month
        start a pass opens a million invoices in a minute, long before autovacuum samples
        them. On stale statistics the planner sorted every due invoice for each batch of 500
        claimed (O(N²): 0.3-0.6 s a batch at 60,000-80,000 due) and the workers' bulk updates
        of 50 attempts hash-joined a sequential scan of every attempt."""
        if not self.is_postgres or not tables:
            return
        names = ", ".join(self.engine.dialect.identifier_preparer.quote(t) for t in tables)
        with self.transaction() as session:
            session.execute(text(f"ANALYZE {names}"))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- migrations -------------------------------------------------------------------------

    def _alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision``."""
        config = self._alembic_config()
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {type(exc.orig).__name__}") from exc


class StatisticsRefresh:
    """When a burst written to one table calls for fresh planner statistics: once ``first``
    rows were written (since this object was made), then each time that count doubles —
    a million-row month start ANALYZEs the table about seven times, not a hundred."""

    def __init__(self, db: Database, table: str, first: int) -> None:
        self.db = db
        self.table = table
        self.written = 0
        self.due_at = first

    def wrote(self, rows: int) -> None:
        self.written += rows

    def refresh_if_due(self) -> None:
        if self.written >= self.due_at:
            self.db.refresh_statistics(self.table)
            self.due_at = 2 * self.written
