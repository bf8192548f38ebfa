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

from prometheus_client import start_http_server

from billing.bootstrap import App, build_app, configure_logging
from billing.entrypoints.preflight import require_redis
from billing.errors import BillingError, ConfigurationError
from billing.observability.metrics import SCHEDULER_LAST_PASS, SCHEDULER_PASSES
from billing.services.pipeline.scheduler_pass import PassReport
from billing.settings import load_settings
from workers.heartbeat import Heartbeat

log = logging.getLogger("billing.scheduler")


def run_once(app: App, heartbeat: Heartbeat | None = None) -> PassReport:
    try:
        report = app.scheduler.run_pass()
    except BillingError:
        SCHEDULER_PASSES.labels(result="failed").inc()
        raise
    SCHEDULER_PASSES.labels(result="ok").inc()
    ended = app.clock()
    SCHEDULER_LAST_PASS.set(ended.timestamp())
    log.info("scheduler pass: %s", report.as_dict())
    app.upcoming.run_pass()  # invoice.upcoming notices
    webhooks = app.webhook_delivery.run_pass()  # outbox rows -> webhook deliveries
    if webhooks.deliveries_created or webhooks.enqueued:
        log.info("webhook pass: %s", webhooks)
    if heartbeat is not None:
        heartbeat.beat({"last_pass_at": ended.isoformat(), "report": report.as_dict()})
    return report


def serve_metrics(port: int) -> None:
    """The scheduler's own ``/metrics`` (pass counters, gateway probes, process)."""
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:  # another process has the port: charging matters more
        log.warning("scheduler metrics not served on :%s (%s)", port, exc.strerror or exc)
        return
    log.info("scheduler metrics on :%s/metrics", port)


def run_forever(
    app: App,
    *,
    interval: float,
    stop: threading.Event | None = None,
    heartbeat: Heartbeat | None = None,
) -> None:
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
            run_once(app, heartbeat)
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
        configure_logging(settings.log_level, settings=settings)
        if not settings.redis_url:
            raise ConfigurationError(
                "BILLING_REDIS_URL is required here (e.g. redis://127.0.0.1:6379/0)"
            )
        if args.once:  # the loop survives broker outages; one pass must reach Redis
            require_redis(settings.redis_url)
        app = build_app(settings)
        if not args.once:
            serve_metrics(settings.scheduler_metrics_port)
            every = max(1.0, settings.heartbeat_max_age / 4)
            heartbeat = Heartbeat(app.db, "scheduler", every=every)
            heartbeat.start()  # alive during a long pass too; each pass adds its report
            try:
                run_forever(app, interval=settings.scheduler_interval, heartbeat=heartbeat)
            finally:
                heartbeat.stop(forget_row=False)
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
