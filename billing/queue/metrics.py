"""``billing_queue_messages{queue}``: messages waiting in the broker, read at scrape time.

For the Redis broker: the queue, its delay queue (``.DQ``, retries waiting for their
backoff) and its dead letters (``.XQ``); for the in-memory broker, the queue. It only
reads lengths; it must never enqueue, ack or delete a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("billing.metrics")


class QueueGauges(Collector):
    def __init__(self, broker: dramatiq.Broker, queue_name: str) -> None:
        self.broker = broker
        self.queue_name = queue_name

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "billing_queue_messages",
            "Messages waiting in the broker (not counting those workers hold).",
            labels=["queue"],
        )
        try:
            for queue, count in self._lengths():
                family.add_metric([queue], count)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: cannot read the queue lengths: %s", type(exc).__name__)
            return
        yield family

    def _lengths(self) -> list[tuple[str, int]]:
        name = self.queue_name
        broker = self.broker
        if isinstance(broker, RedisBroker):
            key = f"{broker.namespace}:{name}"
            pipe = broker.client.pipeline(transaction=False)
            pipe.llen(key)
            pipe.llen(f"{key}.DQ")
            pipe.zcard(f"{key}.XQ")
            ready, delayed, dead = pipe.execute()
            return [(name, int(ready)), (f"{name}.DQ", int(delayed)), (f"{name}.XQ", int(dead))]
        if isinstance(broker, StubBroker):
            queues = broker.queues
            return [(q, int(queues[q].qsize())) for q in (name, f"{name}.DQ") if q in queues]
        return []
