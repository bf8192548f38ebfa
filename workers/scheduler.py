"""The scheduler process: ``python -m workers.scheduler [--once] [--json]`` (what
``billing scheduler`` runs).

One pass, or a loop of passes that survives database and broker outages. What a pass does
is decided in :mod:`billing.services.pipeline.scheduler_pass`; this module only repeats it
and must never decide anything about money.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from types import FrameType

from billing.bootstrap import App, build_app, configure_logging
from billing.entrypoints.preflight import require_redis
from billing.errors import BillingError, ConfigurationError
from billing.services.pipeline.scheduler_pass import PassReport
from billing.settings import load_settings

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="billing scheduler")
    parser.add_argument("--once", action="store_true", help="Make one pass and exit.")
    parser.add_argument("--json", action="store_true", help="Machine-readable output.")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        if not settings.redis_url:
            raise ConfigurationError(
                "BILLING_REDIS_URL is required here (e.g. redis://127.0.0.1:6379/0)"
            )
        if args.once:  # the loop survives broker outages; one pass must reach Redis
            require_redis(settings.redis_url)
        app = build_app(settings)
        if not args.once:
            run_forever(app, interval=settings.scheduler_interval)
            return
        report = run_once(app).as_dict()
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except BillingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(", ".join(f"{k}={v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
