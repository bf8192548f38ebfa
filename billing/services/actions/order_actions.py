"""What an operator action on one attempt's gateway order works with: the database, the
gateway (every merchant account's), the settlement that records what the order says, and
the clock.

It holds collaborators only; it decides nothing and never calls the gateway itself.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from billing.gateway.port import Gateway
from billing.services.pipeline.settlement import Settlement
from billing.services.ports import Clock, system_clock
from billing.storage.database import Database


@dataclass(eq=False)
class OrderActions:
    """``OrderActions(db, gateway=…, settlement=…, clock=…)``: the base of the resolve and
    held-order actions."""

    db: Database
    _: KW_ONLY
    gateway: Gateway
    settlement: Settlement
    clock: Clock = system_clock
