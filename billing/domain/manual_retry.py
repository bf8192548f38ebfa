"""What an operator's manual retry may change. Pure: no I/O, clock passed in.

A manual retry is an extra attempt outside the dunning plan. :func:`after_manual` turns
the dunning decision for its outcome into what may actually happen: a payment ends the
plan (the invoice is paid); an unknown outcome is reconciled like any other; anything
else leaves the automatic plan exactly as it was: the next automatic attempt, the
subscription's status and its cancel deadline. It must never move the plan earlier or
later, and never restart a grace period. One exception: a card the bank reports lost,
stolen or fraudulent is never charged again, so the plan for it stops (an existing
cancel deadline is kept).
"""

from __future__ import annotations

from datetime import datetime

from billing.domain.dunning import Action, Decision, format_time
from billing.domain.model import Category, Outcome, SubscriptionStatus

#: Decisions a manual attempt's outcome takes as they are.
_AS_DECIDED = frozenset({Action.MARK_PAID, Action.RECONCILE, Action.NEEDS_OPERATOR})


def after_manual(
    decision: Decision,
    outcome: Outcome,
    *,
    planned_at: datetime | None,
    status: SubscriptionStatus,
    cancel_at: datetime | None,
) -> Decision:
    """The decision for a manual attempt: ``decision`` is what dunning would do for an
    automatic one; ``planned_at``, ``status`` and ``cancel_at`` are the plan before it."""
    if decision.action in _AS_DECIDED:
        return decision
    why = outcome.reason.replace("_", " ").strip() or outcome.category.value
    if outcome.category is Category.DO_NOT_RETRY:
        if decision.action is Action.NEEDS_PAYMENT_METHOD and (
            status is SubscriptionStatus.NEEDS_PAYMENT_METHOD
        ):
            return Decision(
                Action.NEEDS_PAYMENT_METHOD,
                None,
                SubscriptionStatus.NEEDS_PAYMENT_METHOD,
                counts_as_dunning=False,
                reason=f"{why}; manual retry refused; still waiting for a new card",
                cancel_at=cancel_at,
            )
        return decision  # this card is never charged again, automatically or not
    planned = (
        f"next automatic charge at {format_time(planned_at)}"
        if planned_at
        else ("no automatic charge planned")
    )
    return Decision(
        Action.KEEP_PLAN,
        planned_at,
        None,
        counts_as_dunning=False,
        reason=f"{why}; manual retry not paid; the plan is unchanged ({planned})",
        cancel_at=cancel_at,
    )
