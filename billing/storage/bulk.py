"""Set-based inserts and updates for the month-start burst.

On PostgreSQL a batch travels as one array per column through ``unnest`` (a handful of
parameters whatever the batch size, so no giant statement to compile and no round trip
per row); elsewhere (SQLite) it falls back to SQLAlchemy's executemany.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from billing.storage.tables import Base


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _arrays(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]], session: Session
) -> tuple[str, dict[str, list[Any]]]:
    dialect = session.get_bind().dialect
    parts = []
    params: dict[str, list[Any]] = {}
    for index, name in enumerate(columns):
        sql_type = table.c[name].type.compile(dialect=dialect)
        parts.append(f"CAST(:c{index} AS {sql_type}[])")
        params[f"c{index}"] = [row[name] for row in rows]
    return ", ".join(parts), params


def _table(entity: type[Base]) -> Table:
    table = entity.__table__
    assert isinstance(table, Table)
    return table


def bulk_insert(
    session: Session,
    entity: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[str] = (),
    conflict_columns: Sequence[str] | None = None,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (all with the same keys); with ``conflict_columns``, rows that would
    violate that unique key are skipped (ON CONFLICT DO NOTHING) and not returned; an
    empty ``conflict_columns`` skips rows that would violate any unique key."""
    if not rows:
        return []
    table = _table(entity)
    columns = list(rows[0])
    if _is_postgres(session):
        arrays, params = _arrays(table, columns, rows, session)
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - names from our schema
            f"SELECT * FROM unnest({arrays})"
        )
        if conflict_columns:
            sql += f" ON CONFLICT ({', '.join(conflict_columns)}) DO NOTHING"
        elif conflict_columns is not None:
            sql += " ON CONFLICT DO NOTHING"
        if returning:
            sql += f" RETURNING {', '.join(returning)}"
            return [tuple(r) for r in session.execute(text(sql), params)]
        session.execute(text(sql), params)
        return []
    statement: Any = sqlite.insert(entity) if conflict_columns is not None else insert(entity)
    if conflict_columns is not None:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict_columns) or None)
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
        return [tuple(r) for r in session.execute(statement, list(rows))]
    session.execute(statement, list(rows))
    return []


def bulk_update(session: Session, entity: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Update rows by their ``id``; every row carries the same keys."""
    if not rows:
        return
    table = _table(entity)
    columns = list(rows[0])
    if _is_postgres(session):
        arrays, params = _arrays(table, columns, rows, session)
        assignments = ", ".join(f"{name} = v.{name}" for name in columns if name != "id")
        sql = (
            f"UPDATE {table.name} SET {assignments} "  # noqa: S608 - names from our schema
            f"FROM unnest({arrays}) AS v({', '.join(columns)}) WHERE {table.name}.id = v.id"
        )
        session.execute(text(sql), params)
        return
    session.execute(update(entity), list(rows))
