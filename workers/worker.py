"""The worker process: ``dramatiq workers.worker:setup`` (what ``billing worker`` runs).

dramatiq's CLI calls :func:`setup` once in every worker process; it reads the
settings, builds the Redis broker and declares the actors on it. Each worker process
writes a heartbeat, and dramatiq's Prometheus middleware serves the metrics of all of
them (its own and the project's, through ``PROMETHEUS_MULTIPROC_DIR``) on
``BILLING_WORKER_METRICS_PORT`` (``billing worker`` hands it to dramatiq as
``dramatiq_prom_port``; 0 turns it off).
"""

from __future__ import annotations

import os

from dramatiq.middleware.prometheus import DB_PATH

# Before anything imports prometheus_client: the project's counters are written to the
# files dramatiq's exposition server reads.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DB_PATH)

import dramatiq
from dramatiq.middleware.prometheus import Prometheus

from billing.bootstrap import build_app, configure_logging
from billing.errors import ConfigurationError
from billing.queue.dramatiq import build_broker
from billing.settings import load_settings
from workers.heartbeat import Heartbeat, WorkerHeartbeat


def setup() -> None:
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError("BILLING_REDIS_URL is required to run workers")
    configure_logging(settings.log_level, settings=settings)
    broker = build_broker(settings.redis_url)
    if settings.worker_metrics_port:
        broker.add_middleware(Prometheus())
    dramatiq.set_broker(broker)
    app = build_app(settings, broker=broker)
    every = max(1.0, settings.heartbeat_max_age / 4)
    broker.add_middleware(WorkerHeartbeat(Heartbeat(app.db, "worker", every=every)))
