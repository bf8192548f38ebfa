"""Worker entry point: ``dramatiq workers.worker:setup`` (what ``billing worker`` runs).

dramatiq's CLI calls :func:`setup` once in every worker process; it reads the
settings, builds the Redis broker and declares the actors on it.
"""

from __future__ import annotations

import os
import sys

import dramatiq

from billing.errors import ConfigurationError
from billing.settings import load_settings
from workers.app import build_app, configure_logging
from workers.broker import build_broker


def setup() -> None:
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigurationError("BILLING_REDIS_URL is required to run workers")
    configure_logging(settings.log_level)
    broker = build_broker(settings.redis_url)
    dramatiq.set_broker(broker)
    build_app(settings, broker=broker)


def command(processes: int, threads: int, queue_name: str) -> list[str]:
    """The dramatiq command line that runs the project's workers."""
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.worker:setup",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        queue_name,
        "--skip-logging",
    ]


def run(processes: int, threads: int, queue_name: str) -> None:
    """Replace this process with dramatiq's worker supervisor."""
    argv = command(processes, threads, queue_name)
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter and fixed arguments
