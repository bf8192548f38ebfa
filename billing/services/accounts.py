"""Which merchant account's gateway a call about a subscription goes to.

A subscription belongs to one merchant account for its whole life, so every order of its
attempts lives at that account: charges, status checks, refunds and reversals of an
attempt go through the subscription's account. Reads one column; never calls the gateway.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.gateway.accounts import gateway_for
from billing.gateway.port import Gateway
from billing.storage.tables import Subscription


def account_of(session: Session, subscription_id: int) -> str:
    """The merchant account of a subscription."""
    return session.scalars(
        select(Subscription.merchant_account).where(Subscription.id == subscription_id)
    ).one()


def gateway_of(session: Session, gateway: Gateway, subscription_id: int) -> Gateway:
    """The gateway of the subscription's merchant account."""
    return gateway_for(gateway, account_of(session, subscription_id))
