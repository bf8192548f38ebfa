"""Checks a command makes before it starts work, so that a configuration mistake ends with
one ``error:`` line and a non-zero exit instead of a traceback in a child process.

It decides whether the broker answers and the dunning policy file parses. It must never
print a secret (a Redis URL is shown as host, port and database only) and never change
anything.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from billing.domain.policy_file import load_policy
from billing.errors import ConfigurationError
from billing.settings import Settings


def redis_place(url: str) -> str:
    """``host:port/db`` of a Redis URL, without user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or '/0'}"


def require_redis(url: str | None, *, timeout: float = 3.0) -> None:
    """Raise ConfigurationError unless the broker at ``url`` answers a PING."""
    if not url:
        raise ConfigurationError(
            "BILLING_REDIS_URL is required here (e.g. redis://127.0.0.1:6379/0)"
        )
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise ConfigurationError(
            f"BILLING_REDIS_URL: Redis at {redis_place(url)} does not answer ({type(exc).__name__})"
        ) from None


def require_policy(settings: Settings) -> None:
    """Raise ConfigurationError when BILLING_DUNNING_POLICY does not load."""
    if settings.dunning_policy is not None:
        load_policy(settings.dunning_policy)
