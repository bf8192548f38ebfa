"""Heartbeats of the long-running processes (``billing status`` and the compose
healthchecks read them): a thread that rewrites this process's row every few seconds.

A failed beat (database down) is logged and tried again at the next tick; it never stops
the process and never touches money.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq

from billing.errors import BillingError
from billing.services.ports import Clock, system_clock
from billing.storage.database import Database
from billing.storage.heartbeats import beat, forget

log = logging.getLogger("billing.heartbeat")


class Heartbeat:
    """Beats for ``kind`` every ``every`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(
        self, db: Database, kind: str, *, every: float, clock: Clock = system_clock
    ) -> None:
        self.db = db
        self.kind = kind
        self.every = every
        self.clock = clock
        self.started_at = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, detail: dict[str, Any] | None = None) -> bool:
        try:
            beat(self.db, self.kind, self.clock(), started_at=self.started_at, detail=detail)
        except BillingError as exc:
            log.warning("%s heartbeat not written: %s", self.kind, exc)
            return False
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"{self.kind}-heartbeat", daemon=True
            )
            self._thread.start()

    def stop(self, *, forget_row: bool = True) -> None:
        """Stop beating; remove the row unless ``forget_row`` is False (the scheduler keeps
        its last pass visible to ``billing status``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not forget_row:
            return
        try:
            forget(self.db, self.kind)
        except BillingError as exc:
            log.warning("%s heartbeat not removed: %s", self.kind, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.every)


class WorkerHeartbeat(dramatiq.Middleware):
    """Starts a worker process's heartbeat when its worker boots; removes it at shutdown."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.heartbeat.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.heartbeat.stop()
