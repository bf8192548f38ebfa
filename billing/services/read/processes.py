"""Which scheduler and worker processes are alive (their heartbeats), for ``billing
status``, ``/api/status`` and the compose healthchecks. Read-only."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Any

from billing.storage.database import Database
from billing.storage.heartbeats import Beat, beats


def process_status(db: Database, now: datetime, *, max_age: timedelta) -> dict[str, Any]:
    """The scheduler's last beat and pass (even if it stopped) and the live workers."""
    rows = beats(db)
    schedulers = [b for b in rows if b.kind == "scheduler"]
    workers = [b for b in rows if b.kind == "worker" and now - b.beat_at <= max_age]
    last = schedulers[0] if schedulers else None
    last_pass = _last_pass(schedulers)
    return {
        "scheduler": None
        if last is None
        else {
            "live": now - last.beat_at <= max_age,
            "host": last.host,
            "pid": last.pid,
            "last_beat_at": last.beat_at.isoformat(),
            "last_pass_at": last_pass.get("last_pass_at"),
            "last_pass": last_pass.get("report"),
        },
        "workers": {
            "live": len(workers),
            "processes": [{"host": b.host, "pid": b.pid} for b in workers],
        },
    }


def is_live(
    db: Database, kind: str, now: datetime, *, max_age: timedelta, any_host: bool = False
) -> bool:
    """Whether a process of ``kind`` on this machine (or anywhere) beat recently."""
    host = socket.gethostname()[:128]
    return any(
        b.kind == kind and (any_host or b.host == host) for b in beats(db, since=now - max_age)
    )


def _last_pass(schedulers: list[Beat]) -> dict[str, Any]:
    for row in schedulers:  # newest first
        if row.detail and row.detail.get("last_pass_at"):
            return row.detail
    return {}
