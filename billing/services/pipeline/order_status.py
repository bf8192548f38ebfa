"""Reading a status-query outcome for settling an attempt: does it settle it, and what is
written when it does not. Pure helpers shared by charging, captures and stuck orders; they
never call the gateway and never turn an unsettled status into "paid".
"""

from __future__ import annotations

from dataclasses import replace

from billing.domain.model import Category, Outcome
from billing.services.pipeline.settlement import DECLINED_ORDER, UNSETTLED_STATUS


def settles(status: Outcome) -> bool:
    """Whether a status-query answer settles the attempt: a final order state does (a
    declined order, orderStatus 6, whatever its action code); "pending", "not found" or a
    failed query does not."""
    if status.order_not_found:
        return False
    return status.category not in UNSETTLED_STATUS or status.order_status == DECLINED_ORDER


def settled_or_unknown(status: Outcome) -> Outcome:
    """The status as it is when it settles the attempt, else the same facts as UNKNOWN (the
    attempt is asked about again later)."""
    return status if settles(status) else replace(status, category=Category.UNKNOWN)
