"""The worker process: ``dramatiq workers.worker:setup`` (what ``billing worker`` runs).

dramatiq's CLI calls :func:`setup` once in every worker process; it reads the
settings, builds the Redis broker and declares the actors on it.
"""

from __future__ import annotations

import dramatiq

from billing.bootstrap import build_app, configure_logging
from billing.errors import ConfigurationError
from billing.queue.dramatiq import build_broker
from billing.settings import load_settings


def setup() -> None:
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError("BILLING_REDIS_URL is required to run workers")
    configure_logging(settings.log_level, settings=settings)
    broker = build_broker(settings.redis_url)
    dramatiq.set_broker(broker)
    build_app(settings, broker=broker)
