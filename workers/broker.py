"""Broker construction: Redis in production, dramatiq's in-memory StubBroker in the demo.

Building a broker opens no connection; the Redis client connects on first use.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker


def build_broker(redis_url: str | None) -> dramatiq.Broker:
    """A RedisBroker for ``redis_url``, or an in-memory StubBroker when it is None."""
    broker: dramatiq.Broker
    if redis_url:
        broker = RedisBroker(url=redis_url, namespace="billing")  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    return broker
