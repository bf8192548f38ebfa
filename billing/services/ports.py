"""The ports the use cases depend on; adapters live in billing.gateway and workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from billing.gateway.results import GatewayResult

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Gateway(Protocol):
    def recurrent_payment(
        self,
        *,
        order_number: str,
        binding_id: str,
        amount: int,
        currency: str,
        description: str | None = None,
        client_id: str | None = None,
        language: str | None = None,
    ) -> GatewayResult: ...

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult: ...


class Dispatcher(Protocol):
    """Puts work on the queue. Messages carry only ids; the database is the truth."""

    def charge(self, attempt_ids: Sequence[int]) -> None: ...

    def reconcile(self, attempt_ids: Sequence[int]) -> None: ...

    def backlog(self) -> int | None:
        """Messages waiting in the queue, or None when the broker cannot say."""
        ...


class RecordingDispatcher:
    """An in-memory dispatcher for tests and dry runs: it only records the ids."""

    def __init__(self) -> None:
        self.charges: list[int] = []
        self.reconciles: list[int] = []

    def charge(self, attempt_ids: Sequence[int]) -> None:
        self.charges.extend(attempt_ids)

    def reconcile(self, attempt_ids: Sequence[int]) -> None:
        self.reconciles.extend(attempt_ids)

    def backlog(self) -> int:
        return len(self.charges) + len(self.reconciles)
