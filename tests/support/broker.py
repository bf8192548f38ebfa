"""A queue whose broker can go down: what the API and the callback endpoint must survive."""

from __future__ import annotations

from collections.abc import Sequence

from billing.errors import BrokerError
from tests.support.fakes import RecordingDispatcher


class FlakyDispatcher(RecordingDispatcher):
    """Records like :class:`RecordingDispatcher`; while ``broker_down`` every enqueue fails
    the way the real one does (``BrokerError``) and nothing is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.broker_down = False

    def charge(self, attempt_ids: Sequence[int]) -> None:
        self._check()
        super().charge(attempt_ids)

    def reconcile(self, attempt_ids: Sequence[int]) -> None:
        self._check()
        super().reconcile(attempt_ids)

    def _check(self) -> None:
        if self.broker_down:
            raise BrokerError("cannot enqueue on the broker: ConnectionError (test outage)")
