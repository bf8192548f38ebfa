"""Set-based inserts and updates for the month-start burst.

On PostgreSQL a batch travels as one JSON document read by ``json_to_recordset`` (one
parameter whatever the batch size, so no giant statement to compile and no round trip per
row; the document is written by the C JSON encoder, where one array per column cost the
worker more CPU in psycopg's element-by-element array quoting than the rest of the
settlement); elsewhere (SQLite) it falls back to SQLAlchemy's executemany. Must never
change a value on the way (datetimes travel as ISO 8601 with their offset).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, all_, any_, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.storage.tables import Base


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def ids_in(
    session: Session, column: Any, ids: Collection[int], *, negate: bool = False
) -> ColumnElement[bool]:
    """``column IN ids`` (``NOT IN`` with ``negate``). On PostgreSQL the ids travel as one
    array parameter (``= ANY``/``<> ALL``): an IN list is a new statement per length, whose
    parameters the driver renames one by one in Python at every execution."""
    if not _is_postgres(session):
        plain: ColumnElement[bool] = column.not_in(list(ids)) if negate else column.in_(list(ids))
        return plain
    values = bindparam(None, list(ids), type_=postgresql.ARRAY(BigInteger()))
    result: ColumnElement[bool] = column != all_(values) if negate else column == any_(values)
    return result


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} in a bulk statement")


def _recordset(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]], session: Session
) -> tuple[str, dict[str, str]]:
    """``json_to_recordset(...) AS v(...)`` over ``rows`` and its one parameter."""
    dialect = session.get_bind().dialect
    types = ", ".join(f'"{name}" {table.c[name].type.compile(dialect=dialect)}' for name in columns)
    document = json.dumps(list(rows), separators=(",", ":"), default=_json_value)
    return f"json_to_recordset(CAST(:rows AS json)) AS v({types})", {"rows": document}


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
        source, params = _recordset(table, columns, rows, session)
        names = ", ".join(columns)
        sql = (
            f"INSERT INTO {table.name} ({names}) "  # noqa: S608 - names from our schema
            f"SELECT {', '.join(f'v.{name}' for name in columns)} FROM {source}"
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
        source, params = _recordset(table, columns, rows, session)
        assignments = ", ".join(f"{name} = v.{name}" for name in columns if name != "id")
        sql = (
            f"UPDATE {table.name} SET {assignments} "  # noqa: S608 - names from our schema
            f"FROM {source} WHERE {table.name}.id = v.id"
        )
        session.execute(text(sql), params)
        return
    session.execute(update(entity), list(rows))
