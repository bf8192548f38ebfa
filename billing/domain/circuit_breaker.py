"""The gateway circuit breaker, as pure transitions.

Charging pauses for everyone on a merchant-configuration error (the customer did
nothing wrong) or after ``threshold`` consecutive gateway outages. While open, no
charge is sent; at ``retry_at`` a probe runs, and charging resumes by itself when
the probe succeeds. Subscriptions never change state because of the breaker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from billing.domain.model import Category
from billing.domain.stuck_orders import STUCK_ORDER_DECLINED
from billing.domain.two_phase import CAPTURE_REFUSED, HOLD_RELEASED

#: "Temporary" outcomes that are our own doing on one order, not a gateway outage.
NOT_OUTAGES = frozenset({STUCK_ORDER_DECLINED, CAPTURE_REFUSED, HOLD_RELEASED})


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    trips: int = 0
    reason: str | None = None
    opened_at: datetime | None = None
    retry_at: datetime | None = None

    def allows_charging(self, now: datetime) -> bool:
        return self.state is CircuitState.CLOSED

    def probe_due(self, now: datetime) -> bool:
        return (
            self.state is CircuitState.OPEN and self.retry_at is not None and now >= self.retry_at
        )


def _backoff(delays: tuple[timedelta, ...], index: int) -> timedelta:
    return delays[min(index, len(delays) - 1)]


def after_outcome(
    circuit: Circuit,
    category: Category,
    reason: str,
    now: datetime,
    *,
    pause_backoff: tuple[timedelta, ...],
    outage_threshold: int,
) -> Circuit:
    """The breaker after one charge outcome."""
    if category is Category.MERCHANT_CONFIG:
        return _open(circuit, f"merchant configuration error: {reason}", now, pause_backoff)
    if category is Category.TRANSIENT and reason in NOT_OUTAGES:
        return circuit  # our own decline or release of one order says nothing of the gateway
    if category is Category.TRANSIENT:
        failures = circuit.consecutive_failures + 1
        if failures >= outage_threshold and circuit.state is CircuitState.CLOSED:
            opened = _open(
                circuit, f"{failures} consecutive gateway outages ({reason})", now, pause_backoff
            )
            return replace(opened, consecutive_failures=failures)
        return replace(circuit, consecutive_failures=failures)
    if category is Category.UNKNOWN:
        return circuit
    return Circuit() if circuit.state is CircuitState.CLOSED else circuit


def after_probe(
    circuit: Circuit,
    healthy: bool,
    detail: str,
    now: datetime,
    *,
    pause_backoff: tuple[timedelta, ...],
) -> Circuit:
    """The breaker after a probe: closed if the gateway accepted our credentials."""
    if healthy:
        return Circuit()
    return _open(circuit, detail, now, pause_backoff)


def _open(
    circuit: Circuit, reason: str, now: datetime, pause_backoff: tuple[timedelta, ...]
) -> Circuit:
    trips = circuit.trips + 1 if circuit.state is CircuitState.OPEN else 1
    return Circuit(
        state=CircuitState.OPEN,
        consecutive_failures=circuit.consecutive_failures,
        trips=trips,
        reason=reason[:500],
        opened_at=circuit.opened_at if circuit.state is CircuitState.OPEN else now,
        retry_at=now + _backoff(pause_backoff, trips - 1),
    )
