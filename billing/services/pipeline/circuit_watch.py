"""The breaker fed by charge outcomes, without a row every charge updates.

Consecutive gateway outages are counted in this process's memory, per breaker key (a
merchant account name; ``"default"`` today); the breaker row is written only when the
pure transition (:func:`billing.domain.circuit_breaker.after_outcome`) changes its state:
a merchant-configuration error, or the outage count reaching the threshold. A healthy
answer resets the count in memory only. So workers never serialize on the breaker row, and
a pause is still stored (and seen by every worker and the scheduler) the moment it starts.

It must never decide whether an attempt is charged (that reads the stored row) nor call the
gateway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from billing.domain import circuit_breaker as breaker
from billing.domain.circuit_breaker import CircuitState
from billing.domain.model import Category, Outcome
from billing.gateway.results import RATE_LIMITED
from billing.services.audit import record_event
from billing.storage.circuit_row import load_circuit, save_circuit
from billing.storage.database import Database

log = logging.getLogger("billing.charging")

DEFAULT_KEY = "default"
_TRIPPING = (Category.TRANSIENT, Category.MERCHANT_CONFIG)


def counts(outcome: Outcome) -> bool:
    """Whether an outcome says anything about the gateway's health (an unknown outcome or
    our own throttling does not)."""
    return outcome.category is not Category.UNKNOWN and outcome.reason != RATE_LIMITED


class CircuitWatch:
    """Outcomes in, the breaker row written on a state change only. Thread-safe."""

    def __init__(
        self, db: Database, *, pause_backoff: tuple[timedelta, ...], outage_threshold: int
    ) -> None:
        self.db = db
        self.pause_backoff = pause_backoff
        self.outage_threshold = outage_threshold
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def failures(self, key: str = DEFAULT_KEY) -> int:
        """Consecutive outages this process saw last for ``key``."""
        with self._lock:
            return self._failures.get(key, 0)

    def observe(self, outcomes: Iterable[Outcome], now: datetime, key: str = DEFAULT_KEY) -> None:
        """Count ``outcomes`` (in the order they came; those of one batch together); store
        the first pause they start, if any."""
        trips: list[tuple[Outcome, int]] = []
        with self._lock:
            failures = self._failures.get(key, 0)
            for outcome in outcomes:
                if not counts(outcome):
                    continue
                if outcome.category is Category.MERCHANT_CONFIG:
                    trips.append((outcome, failures))
                elif outcome.category is Category.TRANSIENT:
                    failures += 1
                    if failures >= self.outage_threshold:
                        trips.append((outcome, failures - 1))
                        failures = 0  # counted again from the pause on
                else:
                    failures = 0
            self._failures[key] = failures
        if trips:  # outcomes seen together are one incident: one pause, not one per call
            outcome, before = trips[0]
            self._store(outcome, before, now, key)

    def _store(self, outcome: Outcome, failures_before: int, now: datetime, key: str) -> None:
        with self.db.transaction() as session:
            current = load_circuit(session, key, for_update=True)
            counted = replace(current, consecutive_failures=failures_before)
            after = breaker.after_outcome(
                counted,
                outcome.category,
                outcome.reason,
                now,
                pause_backoff=self.pause_backoff,
                outage_threshold=self.outage_threshold,
            )
            if after.state is CircuitState.CLOSED or after == counted:
                return
            save_circuit(session, after, now, key)
            if current.state is not after.state:
                record_event(
                    session,
                    now,
                    "charging_paused",
                    _for_account(key, after.reason or ""),
                    from_state=current.state,
                    to_state=after.state,
                )
                log.error(
                    "CHARGING PAUSED for merchant account %s until %s: %s",
                    key,
                    after.retry_at,
                    after.reason,
                )


def _for_account(account: str, text: str) -> str:
    """``text`` naming the merchant account, unless it is the one (default) account."""
    return text if account == DEFAULT_KEY else f"merchant account {account}: {text}"
