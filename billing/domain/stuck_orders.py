"""Stuck orders: when an order that is neither paid nor declined is made final.

An order that stays CREATED / PREREGISTERED / PENDING long after the charge was sent (the
gateway allows polling "for no more than half an hour") would otherwise wait days for an
operator. :func:`should_decline` says when decline.do is sent for it: once the charge is
``decline_after`` old, and again no more often than that while the order still is not
final (decline.do can never take money, so a repeat is harmless). Only a DECLINED status
read afterwards lets the invoice get a new orderNumber.

Pure: no I/O, the clock passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: The outcome reason of an attempt whose stuck order we declined (a retry, not a dunning step).
STUCK_ORDER_DECLINED = "stuck_order_declined"
#: actionCode of an order declined with decline.do ("declined by merchant").
DECLINED_BY_MERCHANT = 4005
#: actionCode of an order the gateway declined itself when its session expired.
SESSION_EXPIRED = -2007
#: orderStatus of a DECLINED order.
DECLINED_STATUS = 6
_NOT_THE_CARD = frozenset({DECLINED_BY_MERCHANT, SESSION_EXPIRED, None})


def should_decline(
    *,
    decline_after: timedelta | None,
    sent_at: datetime | None,
    declined_at: datetime | None,
    now: datetime,
) -> bool:
    """Whether to send decline.do now for an attempt whose order is still pending.

    ``decline_after`` None: never (the policy turned it off). ``declined_at``: when
    decline.do was last sent for it (None: never)."""
    if decline_after is None or sent_at is None:
        return False
    if now - sent_at < decline_after:
        return False
    return declined_at is None or now - declined_at >= decline_after


def declined_by_us(
    *, declined_at: datetime | None, order_status: int | None, action: int | None
) -> bool:
    """A DECLINED order that our decline.do (or the order's own expiry) made final, not
    the bank's verdict on the card: the customer did nothing wrong, and the next attempt
    is not a dunning step."""
    return declined_at is not None and order_status == DECLINED_STATUS and action in _NOT_THE_CARD
