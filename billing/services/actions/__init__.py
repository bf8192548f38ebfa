"""What operators and the SaaS backend ask for: one object per resource, each method taking
``actor`` and ``reason``. The CLI, the HTTP API and the console call these and nothing else
to change state."""

from __future__ import annotations

from dataclasses import dataclass

from billing.services.actions.held_orders import HeldOrderActions
from billing.services.actions.invoices import InvoiceActions
from billing.services.actions.pausing import PauseActions
from billing.services.actions.refunds import RefundActions
from billing.services.actions.resolve import ResolveActions
from billing.services.actions.retries import RetryActions
from billing.services.actions.subscriptions import SubscriptionActions


@dataclass(frozen=True)
class Actions:
    subscriptions: SubscriptionActions
    pausing: PauseActions
    invoices: InvoiceActions
    retries: RetryActions
    refunds: RefundActions
    resolve: ResolveActions
    held_orders: HeldOrderActions


__all__ = [
    "Actions",
    "HeldOrderActions",
    "InvoiceActions",
    "PauseActions",
    "RefundActions",
    "ResolveActions",
    "RetryActions",
    "SubscriptionActions",
]
