"""Scheduler entry point: one pass, or a loop that survives database and broker outages."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from billing.errors import BillingError
from billing.services.scheduler import PassReport
from workers.app import App

log = logging.getLogger("billing.scheduler")


def run_once(app: App) -> PassReport:
    report = app.scheduler.run_pass()
    log.info("scheduler pass: %s", report.as_dict())
    return report


def run_forever(app: App, *, interval: float, stop: threading.Event | None = None) -> None:
    """Run passes every ``interval`` seconds until SIGTERM/SIGINT (or ``stop`` is set).

    A pass that fails because PostgreSQL or Redis is down is logged and retried with
    backoff (capped at one minute); nothing is lost because the database says what is due.
    """
    stop = stop or threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after this pass", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            run_once(app)
            failures = 0
        except BillingError as exc:
            failures += 1
            log.warning("scheduler pass failed (%s); retrying", exc)
        delay = interval if failures == 0 else min(60.0, interval * 2 ** min(failures, 6))
        stop.wait(max(0.0, delay - (time.monotonic() - started)))
