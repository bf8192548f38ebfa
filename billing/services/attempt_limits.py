"""Applying the card attempt budget to a retry decision (reads the attempts table).

Decides whether a planned retry must wait so that the card (the subscription's current
binding) gets at most ``card_budget.max_attempts`` charges that reached the bank in any
``card_budget.window``. It must never bring a retry forward, never count a charge that
never left (rate-limit give-ups, connection refused, charges held back while charging
was paused or withdrawn before sending), and writes nothing itself.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.dunning import Action, Decision, format_time
from billing.domain.dunning_policy import CardBudgetPolicy
from billing.domain.durations import format_duration
from billing.domain.retry_limits import next_allowed
from billing.gateway.results import RATE_LIMITED
from billing.storage.tables import ChargeAttempt, Subscription

__all__ = ["NOT_SENT_REASONS", "apply_card_budget", "reached_bank"]

#: Reasons of attempts whose request certainly never reached the bank.
NOT_SENT_REASONS = ("connect_failed", "not_received", RATE_LIMITED)


def reached_bank(reason: str | None) -> bool:
    """Whether a sent attempt's request may have reached the bank."""
    return reason not in NOT_SENT_REASONS


def apply_card_budget(
    session: Session,
    budget: CardBudgetPolicy,
    subscription: Subscription,
    attempt: ChargeAttempt,
    attempt_reached_bank: bool,
    decision: Decision,
) -> Decision:
    """``decision``, with a RETRY pushed to when the card's attempt budget allows it."""
    if decision.action is not Action.RETRY or decision.at is None:
        return decision
    rows = session.execute(
        select(ChargeAttempt.sent_at, ChargeAttempt.reason).where(
            ChargeAttempt.subscription_id == subscription.id,
            ChargeAttempt.binding_version == subscription.binding_version,
            ChargeAttempt.id != attempt.id,
            ChargeAttempt.sent_at.is_not(None),
            ChargeAttempt.sent_at > decision.at - budget.window,
        )
    ).all()
    sent: list[datetime] = [at for at, reason in rows if at is not None and reached_bank(reason)]
    this_card = attempt.binding_version == subscription.binding_version
    if attempt.sent_at is not None and attempt_reached_bank and this_card:
        sent.append(attempt.sent_at)
    at = next_allowed(sent, decision.at, budget)
    if at <= decision.at:
        return decision
    return replace(
        decision,
        at=at,
        reason=(
            f"{decision.reason}; the card's attempt budget ({budget.max_attempts} in "
            f"{format_duration(budget.window)}) is used up: retry moved to {format_time(at)}"
        ),
    )
