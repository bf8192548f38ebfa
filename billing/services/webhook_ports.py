"""The ports webhook delivery depends on: an HTTP sender and a queue of delivery ids.

:class:`WebhookSender` is implemented with httpx in billing.gateway.webhook_http, the
queue by billing.queue.dramatiq (its own ``billing_webhooks`` queue, so a slow receiver
never delays a charge). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from billing.domain.webhooks import SendResult


class WebhookSender(Protocol):
    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> SendResult: ...


class WebhookQueue(Protocol):
    def deliver(self, delivery_ids: Sequence[int]) -> None: ...


class NoWebhookQueue:
    """Deliveries wait in the database until a process with a queue enqueues them."""

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        return None
