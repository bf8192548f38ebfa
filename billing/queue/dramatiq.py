"""The Dramatiq adapter: the broker, the project's actors and the Dispatcher port over them.

A message carries only attempt ids (one, or a batch); the database is the truth. This
module must never decide anything about money: an actor is one line that hands the ids to a
use case.

Building a broker opens no connection (the Redis client connects on first use). Actors
are declared on an explicit broker by :func:`declare_actors` (nothing is bound at import
time) and look their services up lazily, so a worker process connects to
nothing until its first message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from billing.errors import BrokerError
from billing.services.pipeline.batch_charging import BatchCharger
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.webhook_delivery import WebhookDelivering

log = logging.getLogger("billing.worker")

#: Retries of a message whose handling raised (database down, bug): with backoff.
RETRY_OPTIONS: dict[str, Any] = {"max_retries": 50, "min_backoff": 1_000, "max_backoff": 60_000}


@dataclass(frozen=True)
class Actors:
    charge: dramatiq.Actor[[int], None]
    reconcile: dramatiq.Actor[[int], None]
    #: ``charge_attempts([id, ...])``: one message per batch of attempt ids (only ids).
    charge_batch: dramatiq.Actor[[list[int]], None] | None = None


def declare_actors(
    broker: dramatiq.Broker,
    charger: Callable[[], Charger],
    *,
    queue_name: str = "billing",
    batch_charger: Callable[[], BatchCharger] | None = None,
) -> Actors:
    def charge_attempt(attempt_id: int) -> None:
        result = charger().charge(attempt_id)
        log.debug("charge_attempt(%s): %s", attempt_id, result)

    def reconcile_attempt(attempt_id: int) -> None:
        result = charger().reconcile(attempt_id)
        log.debug("reconcile_attempt(%s): %s", attempt_id, result)

    def declare(fn: Callable[[int], None]) -> dramatiq.Actor[[int], None]:
        decorator = dramatiq.actor(
            actor_name=fn.__name__, broker=broker, queue_name=queue_name, **RETRY_OPTIONS
        )
        return decorator(fn)

    batch = None
    if batch_charger is not None:
        batches = batch_charger

        def charge_attempts(attempt_ids: list[int]) -> None:
            results = batches().charge_batch([int(i) for i in attempt_ids])
            log.debug("charge_attempts(%d ids): %s", len(attempt_ids), results)

        batch = dramatiq.actor(
            actor_name="charge_attempts", broker=broker, queue_name=queue_name, **RETRY_OPTIONS
        )(charge_attempts)
    return Actors(
        charge=declare(charge_attempt), reconcile=declare(reconcile_attempt), charge_batch=batch
    )


class DramatiqDispatcher:
    """The Dispatcher port over dramatiq actors; broker failures become BrokerError.

    Attempts to charge go out as batches of at most ``batch_size`` ids per message (when a
    batch actor is declared): a worker claims, sends and settles each batch together."""

    def __init__(self, actors: Actors, *, batch_size: int = 50) -> None:
        self.actors = actors
        self.batch_size = batch_size

    def charge(self, attempt_ids: Sequence[int]) -> None:
        batch = self.actors.charge_batch
        if batch is None:
            self._send(self.actors.charge, attempt_ids)
            return
        ids = list(attempt_ids)
        chunks = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        try:
            for chunk in chunks:
                batch.send(chunk)
        except (redis.RedisError, dramatiq.errors.BrokerError, OSError) as exc:
            raise BrokerError(f"cannot enqueue on the broker: {type(exc).__name__}") from exc

    def reconcile(self, attempt_ids: Sequence[int]) -> None:
        self._send(self.actors.reconcile, attempt_ids)

    def backlog(self) -> int | None:
        """Messages still waiting in the queue (not counting those workers hold)."""
        broker = self.actors.charge.broker
        queue = self.actors.charge.queue_name
        try:
            if isinstance(broker, RedisBroker):
                return int(broker.client.llen(f"{broker.namespace}:{queue}"))
            if isinstance(broker, StubBroker):
                return int(broker.queues[queue].qsize())
        except (redis.RedisError, KeyError, OSError):
            return None
        return None

    @staticmethod
    def _send(actor: dramatiq.Actor[[int], None], attempt_ids: Sequence[int]) -> None:
        try:
            for attempt_id in attempt_ids:
                actor.send(attempt_id)
        except (redis.RedisError, dramatiq.errors.BrokerError, OSError) as exc:
            raise BrokerError(f"cannot enqueue on the broker: {type(exc).__name__}") from exc


def webhook_queue_name(queue_name: str) -> str:
    """The webhooks' own queue: ``billing_webhooks`` next to ``billing``."""
    return f"{queue_name}_webhooks"


def declare_webhook_actor(
    broker: dramatiq.Broker,
    delivering: Callable[[], WebhookDelivering],
    *,
    queue_name: str = "billing",
    max_busy_threads: int = 2,
) -> dramatiq.Actor[[int], None]:
    """``deliver_webhook(delivery_id)`` on its own queue. At most ``max_busy_threads``
    threads of a worker process wait on receivers at once; a message beyond that is put
    back with a short delay, so a slow or dead receiver never takes the threads charges need.
    """
    slots = threading.BoundedSemaphore(max_busy_threads)

    def deliver_webhook(delivery_id: int) -> None:
        if not slots.acquire(blocking=False):
            actor.send_with_options(args=(delivery_id,), delay=1_000)
            return
        try:
            result = delivering().deliver(delivery_id)
        finally:
            slots.release()
        log.debug("deliver_webhook(%s): %s", delivery_id, result)

    actor: dramatiq.Actor[[int], None] = dramatiq.actor(
        actor_name="deliver_webhook",
        broker=broker,
        queue_name=webhook_queue_name(queue_name),
        **RETRY_OPTIONS,
    )(deliver_webhook)
    return actor


class DramatiqWebhookQueue:
    """The WebhookQueue port over the ``deliver_webhook`` actor."""

    def __init__(self, actor: dramatiq.Actor[[int], None]) -> None:
        self.actor = actor

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        DramatiqDispatcher._send(self.actor, delivery_ids)


def build_broker(redis_url: str | None) -> dramatiq.Broker:
    """A RedisBroker for ``redis_url``, or an in-memory StubBroker when it is None."""
    broker: dramatiq.Broker
    if redis_url:
        broker = RedisBroker(url=redis_url, namespace="billing")  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    return broker
