"""Limits on retrying one invoice and one card: pure decisions, clock passed in.

Decides (1) when a run of temporary failures (errorCode 7, 5xx, issuer unreachable) has
gone on long enough — ``transient.max_attempts`` in a row or ``transient.give_up_after``
since the first — that the invoice enters dunning like a soft decline, and (2) when a
retry may run without exceeding the card's attempt budget (``card_budget``: at most
``max_attempts`` charges that reached the bank in any ``window``). It must never count a
rate-limit give-up or a charge held back while charging was paused (no request reached
the bank), never bring a retry forward, and never turn anything but a TRANSIENT outcome
into a decline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from billing.domain.dunning_policy import CardBudgetPolicy, TransientPolicy
from billing.domain.durations import format_duration
from billing.domain.model import AttemptSummary, Category, Outcome

__all__ = ["TRANSIENT_CAP_REASON", "cap_transient", "next_allowed"]

#: The reason slug of a temporary failure that used up the transient cap.
TRANSIENT_CAP_REASON = "transient_cap_reached"


def cap_transient(
    policy: TransientPolicy,
    earlier: Sequence[AttemptSummary],
    outcome: Outcome,
    now: datetime,
    *,
    counted: bool = True,
) -> Outcome:
    """``outcome`` itself, or a SOFT_DECLINE ``transient_cap_reached`` when this temporary
    failure ends a run that is too long. ``earlier``: the invoice's finished attempts,
    oldest first; ``counted``: whether this attempt's request left (False for a rate-limit
    give-up, which never ends a run)."""
    if outcome.category is not Category.TRANSIENT or not counted:
        return outcome
    run: list[AttemptSummary] = []
    for attempt in reversed(earlier):
        if attempt.category is not Category.TRANSIENT:
            break
        if attempt.counted:
            run.append(attempt)
    count = len(run) + 1
    started = min((a.at for a in run if a.at is not None), default=now)
    too_many = count >= policy.max_attempts
    too_long = now - started >= policy.give_up_after
    if not (too_many or too_long):
        return outcome
    limit = (
        f"{count} in a row (limit {policy.max_attempts})"
        if too_many
        else f"for {format_duration(now - started)} (limit {format_duration(policy.give_up_after)})"
    )
    return replace(
        outcome,
        category=Category.SOFT_DECLINE,
        reason=TRANSIENT_CAP_REASON,
        message=(f"temporary failures {limit}, last: {outcome.reason}: treated as a soft decline"),
    )


def next_allowed(sent: Iterable[datetime], at: datetime, budget: CardBudgetPolicy) -> datetime:
    """The earliest moment at or after ``at`` when fewer than ``budget.max_attempts`` of
    the ``sent`` times fall within the window ending then (so one more charge fits)."""
    times = sorted(sent)
    moment = at
    for _ in range(2):  # sent times are in the past: one push always suffices
        inside = [t for t in times if moment - budget.window < t <= moment]
        excess = len(inside) - budget.max_attempts
        if excess < 0:
            return moment
        moment = inside[excess] + budget.window  # the oldest that must leave the window
    return moment
