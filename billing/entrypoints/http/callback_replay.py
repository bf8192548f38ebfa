"""The callback replay filter shared by every callback process: Redis ``SET NX EX``.

``claim(key)`` is True once per window for a (orderNumber, mdOrder, operation, status)
across all processes that share ``BILLING_REDIS_URL``; ``release(key)`` forgets a claim
whose work failed, so the gateway's retry is acted on. Without Redis the caller falls back
to the per-process in-memory filter (:class:`billing.entrypoints.http.callbacks.RepeatFilter`).

A callback is only a hint to re-check an order's status, so when Redis cannot be reached
the callback is acted on (fail open, logged): a duplicate re-check is harmless, a lost one
is not. Never: connect at import or construction time, keep a key past its window, or put
a received value in a Redis key unhashed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Hashable
from datetime import timedelta
from typing import Protocol

import redis

log = logging.getLogger("billing.callbacks")

KEY_PREFIX = "billing:callbacks:seen:"
_TIMEOUT_SECONDS = 1.0  # claims run on the event loop: never wait long


class ReplayFilter(Protocol):
    window: timedelta

    def claim(self, key: Hashable) -> bool: ...

    def release(self, key: Hashable) -> None: ...


def redis_key(key: Hashable, prefix: str = KEY_PREFIX) -> str:
    """A fixed-length Redis key for a notification key (pure)."""
    text = json.dumps(key, default=str, separators=(",", ":"))
    return prefix + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class RedisReplayFilter:
    """Claims in Redis with ``SET key 1 NX EX window``: one winner across processes."""

    def __init__(self, client: redis.Redis, window: timedelta, *, prefix: str = KEY_PREFIX) -> None:
        seconds = int(window.total_seconds())
        if seconds < 1:
            raise ValueError("the replay window must be at least one second")
        self.client = client
        self.window = window
        self.prefix = prefix
        self._seconds = seconds

    @classmethod
    def from_url(cls, url: str, window: timedelta) -> RedisReplayFilter:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=_TIMEOUT_SECONDS, socket_timeout=_TIMEOUT_SECONDS
        )
        return cls(client, window)

    def claim(self, key: Hashable) -> bool:
        try:
            won = self.client.set(redis_key(key, self.prefix), "1", nx=True, ex=self._seconds)
        except redis.RedisError as exc:
            log.warning("callback replay filter unavailable (%s); acting on the callback", exc)
            return True
        return bool(won)

    def release(self, key: Hashable) -> None:
        try:
            self.client.delete(redis_key(key, self.prefix))
        except redis.RedisError as exc:  # the claim expires with its window anyway
            log.warning("callback replay filter: cannot release a claim (%s)", exc)


def shared_replay_filter(redis_url: str | None, window: timedelta) -> RedisReplayFilter | None:
    """The Redis-backed filter when Redis is configured, else None (use the in-memory one)."""
    return RedisReplayFilter.from_url(redis_url, window) if redis_url else None
