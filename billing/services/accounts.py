"""Which merchant account's gateway a call about a subscription goes to.

A subscription belongs to one merchant account for its whole life, so every order of its
attempts lives at that account: charges, status checks, refunds and reversals of an
attempt go through the subscription's account. Reads one column; never calls the gateway.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.two_phase import TwoPhase
from billing.gateway.accounts import MerchantGateways, gateway_for
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


def two_phase_of(
    session: Session, gateway: Gateway, subscription_id: int, default: TwoPhase
) -> TwoPhase:
    """The two-phase settings of the subscription's merchant account: its own flag, the
    refused-capture rule shared by every account (``BILLING_GATEWAY_CAPTURE_FAILED``)."""
    if not isinstance(gateway, MerchantGateways):
        return default
    found = gateway.account(account_of(session, subscription_id))
    return default if found is None else replace(default, enabled=found.two_phase)
