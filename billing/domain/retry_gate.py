"""Whether an operator's "retry now" would be refused, and why, in words. Pure.

It decides, from facts read elsewhere, the one reason a manual retry of a subscription's
open invoice cannot happen now: the subscription is paused or canceled, nothing is open,
a charge is already in flight, charging is paused for everyone, or the card was declined
as lost, stolen or fraud and no new card was set since. The console disables its button
with this reason; the retry use case refuses with it. It must never touch the database or
the clock, and never allow a retry the use case would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.domain.model import Category, SubscriptionStatus


@dataclass(frozen=True)
class RetryFacts:
    """What is known about one subscription when someone wants to retry it now."""

    status: str
    has_open_invoice: bool = True
    in_flight: bool = False
    charging_paused: bool = False
    charging_reason: str | None = None
    #: The open invoice's latest finished attempt: its category and the card it used.
    last_category: str | None = None
    last_binding_version: int | None = None
    binding_version: int = 1


def card_refused(facts: RetryFacts) -> bool:
    """The card in use was declined as lost, stolen or fraud (never charge it again)."""
    return (
        facts.last_category == Category.DO_NOT_RETRY.value
        and facts.last_binding_version == facts.binding_version
    )


def retry_refusal(facts: RetryFacts) -> str | None:
    """Why "retry now" would be refused, or None when it would be sent."""
    if facts.status == SubscriptionStatus.CANCELED:
        return "the subscription is canceled"
    if facts.status == SubscriptionStatus.PAUSED:
        return "the subscription is paused: resume it first"
    if not facts.has_open_invoice:
        return "nothing is owed: no open invoice"
    if facts.in_flight:
        return "a charge for this invoice is already in flight"
    if card_refused(facts):
        return "the card was declined as lost, stolen or fraud: set a new card first"
    if facts.charging_paused:
        return f"charging is paused for everyone: {facts.charging_reason or 'no reason given'}"
    return None
