"""The dunning decision: what to do after one charge outcome. Pure: no I/O, clock passed in.

:func:`decide` looks at the outcome of the attempt being settled and the invoice's earlier
finished attempts and returns a :class:`Decision`: retry when, reconcile when, suspend,
cancel, wait for a new card, pause charging for everyone, hold one subscription for an
operator (the gateway refused its own data), or call an operator. It never pauses everyone
for an error that concerns one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from billing.domain.dunning_policy import DoNotRetryAction, DunningPolicy, ExhaustedAction
from billing.domain.durations import format_duration
from billing.domain.model import (
    AttemptSummary,
    AttemptTrigger,
    Category,
    Outcome,
    SubscriptionStatus,
)


class Action(StrEnum):
    MARK_PAID = "mark_paid"
    RETRY = "retry"  # charge again at ``at`` (a new attempt)
    RECONCILE = "reconcile"  # check the order status of the same attempt at ``at``
    SUSPEND = "suspend"
    CANCEL = "cancel"
    NEEDS_PAYMENT_METHOD = "needs_payment_method"
    PAUSE_CHARGING = "pause_charging"  # for everyone, until ``at``
    NEEDS_OPERATOR = "needs_operator"
    HOLD = "hold"  # this subscription only: no charges until an operator resumes it
    #: A manual retry that did not pay: the automatic plan (next attempt, status, cancel
    #: deadline) stays exactly as it was (see :mod:`billing.domain.manual_retry`).
    KEEP_PLAN = "keep_plan"


@dataclass(frozen=True)
class Decision:
    action: Action
    #: When the next step runs: retry time, reconcile time, pause end; None = nothing planned.
    at: datetime | None
    #: The subscription's new status; None = leave it unchanged.
    subscription_status: SubscriptionStatus | None
    #: True for a soft decline that used up a step of the dunning schedule.
    counts_as_dunning: bool
    #: One human sentence for events, logs and screens.
    reason: str
    #: When a suspended / needs_payment_method subscription will be canceled; None = never.
    cancel_at: datetime | None = None


def format_time(moment: datetime) -> str:
    """``2026-12-04 09:00 UTC`` (seconds shown only when not zero)."""
    moment = moment.astimezone(UTC)
    if moment.second or moment.microsecond:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (UTC), got naive {moment!r}")
    return moment.astimezone(UTC)


def _capped(delays: tuple[timedelta, ...], index: int) -> timedelta:
    """The ``index``-th delay of a backoff; the last value repeats."""
    return delays[min(max(index, 0), len(delays) - 1)]


def _trailing(attempts: Sequence[AttemptSummary], category: Category) -> int:
    count = 0
    for attempt in reversed(attempts):
        if attempt.category is not category:
            break
        count += 1
    return count


def _why(outcome: Outcome, fallback: str) -> str:
    """A short human phrase for the outcome: its reason slug in words."""
    text = outcome.reason.replace("_", " ").strip()
    return text or fallback


def _cancel_at(now: datetime, after: timedelta | None) -> datetime | None:
    return None if after is None else now + after


def _cancel_phrase(cancel_at: datetime | None) -> str:
    if cancel_at is None:
        return "never canceled automatically"
    return f"canceled at {format_time(cancel_at)} unless resolved"


def decide(
    policy: DunningPolicy,
    attempts: Sequence[AttemptSummary],
    outcome: Outcome,
    now: datetime,
    *,
    binding_version: int = 1,
    trigger: AttemptTrigger = AttemptTrigger.SCHEDULED,
    first_unknown_at: datetime | None = None,
    checks_so_far: int = 0,
) -> Decision:
    """Decide what follows ``outcome``.

    ``attempts``: the invoice's earlier finished attempts, oldest first, without the one
    being decided. ``binding_version``: the subscription's current binding version (only
    soft declines on that binding use up the dunning schedule).
    ``trigger``: how the attempt being decided was started (a MANUAL soft decline does not
    use up a dunning step). ``first_unknown_at``: when the attempt's outcome became
    unknown (usually when it was sent). ``checks_so_far``: status checks already made for
    that attempt which did not settle it. ``now`` must be aware; results are in UTC.
    """
    now = _utc(now, "now")
    if first_unknown_at is not None:
        first_unknown_at = _utc(first_unknown_at, "first_unknown_at")
    category = outcome.category
    if category is Category.PAID:
        return Decision(
            Action.MARK_PAID,
            None,
            SubscriptionStatus.ACTIVE,
            counts_as_dunning=False,
            reason="paid",
        )
    if category is Category.SOFT_DECLINE:
        return _soft_decline(policy, attempts, outcome, now, trigger, binding_version)
    if category is Category.HARD_DECLINE:
        return _hard_decline(policy, attempts, outcome, now, binding_version)
    if category is Category.DO_NOT_RETRY:
        return _do_not_retry(policy, outcome, now)
    if category is Category.TRANSIENT:
        k = _trailing(attempts, Category.TRANSIENT)
        at = now + _capped(policy.transient.backoff, k)
        return Decision(
            Action.RETRY,
            at,
            None,
            counts_as_dunning=False,
            reason=(
                f"{_why(outcome, 'gateway unavailable')}; temporary failure {k + 1} in a row, "
                f"retry at {format_time(at)} (not a dunning step)"
            ),
        )
    if category is Category.UNKNOWN:
        return _unknown(policy, outcome, now, first_unknown_at, checks_so_far)
    if category is Category.MERCHANT_CONFIG:
        k = _trailing(attempts, Category.MERCHANT_CONFIG)
        at = now + _capped(policy.merchant_config.pause_backoff, k)
        return Decision(
            Action.PAUSE_CHARGING,
            at,
            None,
            counts_as_dunning=False,
            reason=(
                f"merchant configuration error ({_why(outcome, 'rejected')}); charging paused "
                f"until {format_time(at)}; the customer is not at fault"
            ),
        )
    if category is Category.REQUEST_REJECTED:
        return Decision(
            Action.HOLD,
            None,
            SubscriptionStatus.HELD,
            counts_as_dunning=False,
            reason=(
                f"the gateway refused this subscription's charge ({_why(outcome, 'rejected')}"
                f"{_codes(outcome)}); held for an operator: fix it with `update`, then `resume`; "
                "other subscriptions are charged as usual"
            ),
        )
    raise ValueError(f"unexpected outcome category {category!r}")  # pragma: no cover


def _codes(outcome: Outcome) -> str:
    parts = []
    if outcome.error_code is not None:
        parts.append(f"errorCode {outcome.error_code}")
    if outcome.action_code is not None:
        parts.append(f"actionCode {outcome.action_code}")
    if outcome.message:
        parts.append(repr(outcome.message[:120]))
    return (", " + ", ".join(parts)) if parts else ""


def _soft_decline(
    policy: DunningPolicy,
    attempts: Sequence[AttemptSummary],
    outcome: Outcome,
    now: datetime,
    trigger: AttemptTrigger,
    binding_version: int,
) -> Decision:
    soft = policy.soft_decline
    total = len(soft.retry_after)
    # Dunning is per card: declines of an earlier binding do not count (a new card starts
    # a fresh run).
    used = sum(
        1
        for attempt in attempts
        if attempt.category is Category.SOFT_DECLINE
        and attempt.trigger is not AttemptTrigger.MANUAL
        and attempt.binding_version == binding_version
    )
    why = _why(outcome, "declined")
    if trigger is AttemptTrigger.MANUAL:
        if used > total:
            # The schedule ran out before this manual retry: nothing more is planned.
            return Decision(
                Action.SUSPEND,
                None,
                None,
                counts_as_dunning=False,
                reason=f"{why}; manual retry declined; the dunning schedule is already used up",
            )
        # Keep the pending step: its delay again, from now, without consuming it.
        at = now + soft.retry_after[max(used, 1) - 1]
        planned = f"retry {used} of {total}" if used else "next charge"
        return Decision(
            Action.RETRY,
            at,
            SubscriptionStatus.PAST_DUE,
            counts_as_dunning=False,
            reason=(
                f"{why}; manual retry declined (not a dunning step); {planned} at {format_time(at)}"
            ),
        )
    n = used + 1
    if n <= total:
        at = now + soft.retry_after[n - 1]
        return Decision(
            Action.RETRY,
            at,
            SubscriptionStatus.PAST_DUE,
            counts_as_dunning=True,
            reason=f"{why}; retry {n} of {total} at {format_time(at)}",
        )
    if soft.on_exhausted is ExhaustedAction.CANCEL:
        return Decision(
            Action.CANCEL,
            None,
            SubscriptionStatus.CANCELED,
            counts_as_dunning=True,
            reason=f"{why}; all {total} retries declined; subscription canceled",
        )
    cancel_at = _cancel_at(now, soft.cancel_after)
    return Decision(
        Action.SUSPEND,
        cancel_at,
        SubscriptionStatus.SUSPENDED,
        counts_as_dunning=True,
        reason=(
            f"{why}; all {total} retries declined; subscription suspended, "
            f"{_cancel_phrase(cancel_at)}"
        ),
        cancel_at=cancel_at,
    )


def _hard_decline(
    policy: DunningPolicy,
    attempts: Sequence[AttemptSummary],
    outcome: Outcome,
    now: datetime,
    binding_version: int,
) -> Decision:
    why = _why(outcome, "card declined")
    if outcome.confirm_before_decline:
        confirmed = any(
            attempt.category is Category.HARD_DECLINE
            and attempt.confirm_before_decline
            and attempt.binding_version == binding_version
            for attempt in attempts
        )
        if not confirmed:
            at = now + policy.hard_decline.confirm_after
            return Decision(
                Action.RETRY,
                at,
                None,
                counts_as_dunning=False,
                reason=f"{why}; confirming once at {format_time(at)} before asking for a new card",
            )
    return _needs_payment_method(policy, now, f"{why}; a new card is needed")


def _needs_payment_method(policy: DunningPolicy, now: datetime, text: str) -> Decision:
    cancel_at = _cancel_at(now, policy.hard_decline.cancel_after)
    return Decision(
        Action.NEEDS_PAYMENT_METHOD,
        None,
        SubscriptionStatus.NEEDS_PAYMENT_METHOD,
        counts_as_dunning=False,
        reason=f"{text}; no retries until one is set; {_cancel_phrase(cancel_at)}",
        cancel_at=cancel_at,
    )


def _do_not_retry(policy: DunningPolicy, outcome: Outcome, now: datetime) -> Decision:
    why = _why(outcome, "card refused")
    if policy.do_not_retry.action is DoNotRetryAction.CANCEL:
        return Decision(
            Action.CANCEL,
            None,
            SubscriptionStatus.CANCELED,
            counts_as_dunning=False,
            reason=f"{why}; the card is never retried; subscription canceled",
        )
    return _needs_payment_method(
        policy, now, f"{why}; this card is never retried; a new card is needed"
    )


def _unknown(
    policy: DunningPolicy,
    outcome: Outcome,
    now: datetime,
    first_unknown_at: datetime | None,
    checks_so_far: int,
) -> Decision:
    unknown = policy.unknown
    why = _why(outcome, "outcome unknown")
    if first_unknown_at is not None:
        deadline = first_unknown_at + unknown.give_up_after
        if now >= deadline:
            return Decision(
                Action.NEEDS_OPERATOR,
                None,
                None,
                counts_as_dunning=False,
                reason=(
                    f"{why}; outcome still unknown {format_duration(now - first_unknown_at)} "
                    f"after {format_time(first_unknown_at)}; an operator must check the order "
                    "(never guessed)"
                ),
            )
    else:
        deadline = None
    at = now + _capped(unknown.reconcile_backoff, checks_so_far)
    if deadline is not None and at > deadline:
        at = deadline  # the last check happens exactly when giving up is due
    return Decision(
        Action.RECONCILE,
        at,
        None,
        counts_as_dunning=False,
        reason=f"{why}; checking the order status at {format_time(at)} (check {checks_so_far + 1})",
    )


def next_retry_after_new_binding(now: datetime) -> Decision:
    """A new binding was set while the invoice is unpaid (or while a charge on the old card
    was in flight and then declined): charge the new card right away, a fresh dunning run."""
    now = _utc(now, "now")
    return Decision(
        Action.RETRY,
        now,
        SubscriptionStatus.PAST_DUE,
        counts_as_dunning=False,
        reason=f"new payment method set; retrying at once ({format_time(now)})",
    )


def describe_schedule(
    policy: DunningPolicy, first_failure_at: datetime
) -> list[tuple[datetime, str]]:
    """The planned soft-decline timeline after a first decline, for operators.

    Assumes every retry is declined at the moment it runs.
    """
    soft = policy.soft_decline
    moment = _utc(first_failure_at, "first_failure_at")
    total = len(soft.retry_after)
    plan: list[tuple[datetime, str]] = []
    for step, delay in enumerate(soft.retry_after, start=1):
        moment += delay
        plan.append((moment, f"retry {step} of {total} at {format_time(moment)}"))
    if soft.on_exhausted is ExhaustedAction.CANCEL:
        plan.append((moment, f"canceled at {format_time(moment)}"))
        return plan
    plan.append((moment, f"suspended at {format_time(moment)}"))
    if soft.cancel_after is not None:
        canceled = moment + soft.cancel_after
        plan.append((canceled, f"canceled at {format_time(canceled)}"))
    return plan
