"""Heartbeats and schema readiness: which scheduler and worker processes are alive, and
whether the database is migrated to the code's head revision.

A heartbeat is one row per process (``kind:host:pid``), rewritten every few seconds; a row
older than the allowed age is simply not live. Nothing here decides anything about money
and nothing here touches an attempt, an invoice or a subscription.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, select

from billing.storage.database import Database
from billing.storage.tables import Heartbeat

KINDS = ("scheduler", "worker")
#: Rows of processes gone this long are deleted by the next scheduler beat.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Beat:
    kind: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    detail: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "beat_at": self.beat_at.isoformat(),
            "detail": self.detail,
        }


def process_name(kind: str, host: str | None = None, pid: int | None = None) -> str:
    host = host or socket.gethostname()
    return f"{kind}:{host}:{pid if pid is not None else os.getpid()}"[:200]


def beat(
    db: Database,
    kind: str,
    now: datetime,
    *,
    started_at: datetime,
    detail: dict[str, Any] | None = None,
    host: str | None = None,
    pid: int | None = None,
) -> None:
    """Write this process's heartbeat (one small transaction)."""
    if kind not in KINDS:
        raise ValueError(f"unknown process kind {kind!r}")
    host = (host or socket.gethostname())[:128]
    pid = os.getpid() if pid is None else pid
    name = process_name(kind, host, pid)
    text = json.dumps(detail, default=str) if detail is not None else None
    with db.transaction() as session:
        row = session.get(Heartbeat, name, with_for_update=True)
        if row is None:
            session.add(
                Heartbeat(
                    name=name,
                    kind=kind,
                    host=host,
                    pid=pid,
                    started_at=started_at,
                    beat_at=now,
                    detail=text,
                )
            )
        else:
            row.beat_at = now
            if text is not None:
                row.detail = text
        if kind == "scheduler":
            session.execute(delete(Heartbeat).where(Heartbeat.beat_at < now - FORGET_AFTER))


def forget(db: Database, kind: str) -> None:
    """Remove this process's heartbeat (a clean shutdown)."""
    with db.transaction() as session:
        session.execute(delete(Heartbeat).where(Heartbeat.name == process_name(kind)))


def beats(db: Database, *, since: datetime | None = None) -> list[Beat]:
    """The heartbeats written at or after ``since`` (all when None), newest first."""
    query = select(Heartbeat).order_by(Heartbeat.beat_at.desc())
    if since is not None:
        query = query.where(Heartbeat.beat_at >= since)
    with db.transaction() as session:
        rows = session.scalars(query).all()
        return [
            Beat(
                kind=row.kind,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                beat_at=row.beat_at,
                detail=json.loads(row.detail) if row.detail else None,
            )
            for row in rows
        ]


def schema_revisions(db: Database) -> tuple[set[str], set[str]]:
    """(the database's current revisions, the code's head revisions)."""
    script = ScriptDirectory.from_config(db._alembic_config())
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, set(script.get_heads())
