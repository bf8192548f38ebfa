"""Collecting a subscription's open invoices: which one is charged, what each waits for,
and which way the subscription's dunning status may move. Pure: no I/O, clock passed in.

The policy (README, "Several open invoices"): one collection at a time, oldest first. While
an older invoice of a subscription is being collected or is in dunning, newer open invoices
wait for it (no planned attempt, step ``waiting_for_invoice``); when it is paid or closed the
oldest waiting one is charged. Dunning state belongs to the subscription and only moves
forward (active → past_due → suspended / needs_payment_method → canceled); it goes back only
through recovery (nothing failing any more) or a new card (a fresh dunning run), which are
not decided here.

:func:`next_step` states the next step of one open invoice; ``NONE`` means nothing will ever
happen to it (a bug the checks look for). This module never changes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing.domain.model import InvoiceStatus, SubscriptionStatus


class StepKind(StrEnum):
    FINAL = "final"  # paid, void or uncollectible: nothing more to do
    IN_FLIGHT = "in_flight"  # a charge is out; its outcome decides what follows
    PLANNED = "planned"  # an attempt is planned at ``at``
    WAITING_FOR_INVOICE = "waiting_for_invoice"  # an older open invoice is collected first
    WAITING_FOR_CARD = "waiting_for_card"  # suspended / needs_payment_method: a new card
    WAITING_FOR_OPERATOR = "waiting_for_operator"  # held, paused, or an unknown outcome
    NONE = "none"  # nothing planned and nothing to wait for: never collected


@dataclass(frozen=True)
class OpenInvoiceFacts:
    """What :func:`next_step` needs to know about one invoice."""

    id: int
    status: InvoiceStatus
    period_start: datetime
    next_attempt_at: datetime | None
    #: A charge of it is pending, sending or unknown.
    in_flight: bool = False
    #: Its last attempt is ``needs_operator`` (an outcome never guessed).
    needs_operator: bool = False


@dataclass(frozen=True)
class NextStep:
    kind: StepKind
    #: When a planned attempt runs.
    at: datetime | None = None
    #: The invoice waited for (``waiting_for_invoice``).
    waits_for: int | None = None

    @property
    def exists(self) -> bool:
        return self.kind is not StepKind.NONE

    def describe(self) -> str:
        if self.kind is StepKind.PLANNED and self.at is not None:
            return f"attempt planned at {self.at.isoformat()}"
        if self.kind is StepKind.WAITING_FOR_INVOICE:
            return f"waiting for invoice {self.waits_for}"
        return self.kind.value.replace("_", " ")


_CARD = frozenset({SubscriptionStatus.SUSPENDED, SubscriptionStatus.NEEDS_PAYMENT_METHOD})
_OPERATOR = frozenset({SubscriptionStatus.HELD, SubscriptionStatus.PAUSED})


def next_step(
    invoice: OpenInvoiceFacts,
    subscription_status: SubscriptionStatus,
    others: Sequence[OpenInvoiceFacts],
) -> NextStep:
    """The next step of ``invoice``; ``others``: the subscription's other invoices."""
    if invoice.status is not InvoiceStatus.OPEN:
        return NextStep(StepKind.FINAL)
    if invoice.in_flight:
        return NextStep(StepKind.IN_FLIGHT)
    if invoice.next_attempt_at is not None:
        return NextStep(StepKind.PLANNED, at=invoice.next_attempt_at)
    if invoice.needs_operator or subscription_status in _OPERATOR:
        return NextStep(StepKind.WAITING_FOR_OPERATOR)
    if subscription_status in _CARD:
        return NextStep(StepKind.WAITING_FOR_CARD)
    older = [
        other
        for other in others
        if other.status is InvoiceStatus.OPEN
        and other.id != invoice.id
        and (other.period_start, other.id) < (invoice.period_start, invoice.id)
    ]
    if subscription_status is not SubscriptionStatus.CANCELED and older:
        oldest = min(older, key=lambda other: (other.period_start, other.id))
        return NextStep(StepKind.WAITING_FOR_INVOICE, waits_for=oldest.id)
    return NextStep(StepKind.NONE)


def to_collect(
    subscription_status: SubscriptionStatus, invoices: Sequence[OpenInvoiceFacts]
) -> int | None:
    """The invoice to charge now, if any: the oldest open one, when it has no step of its
    own and the subscription is charged automatically (one collection at a time)."""
    if subscription_status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
        return None
    open_ = sorted(
        (i for i in invoices if i.status is InvoiceStatus.OPEN),
        key=lambda i: (i.period_start, i.id),
    )
    if not open_:
        return None
    oldest = open_[0]
    if next_step(oldest, subscription_status, open_).kind is StepKind.NONE:
        return oldest.id
    return None


#: How far along dunning a status is; statuses outside it (held, paused) are not ranked.
_RANK = {
    SubscriptionStatus.ACTIVE: 0,
    SubscriptionStatus.PAST_DUE: 1,
    SubscriptionStatus.SUSPENDED: 2,
    SubscriptionStatus.NEEDS_PAYMENT_METHOD: 2,
    SubscriptionStatus.CANCELED: 3,
}


def dunning_move(
    current: SubscriptionStatus,
    current_cancel_at: datetime | None,
    proposed: SubscriptionStatus,
    proposed_cancel_at: datetime | None,
) -> tuple[SubscriptionStatus, datetime | None]:
    """The status and cancel date after one invoice's outcome proposes ``proposed``.

    Forward only: a proposal behind ``current`` (suspended → past_due because a newer
    invoice was declined) keeps ``current`` and its cancel date. Between statuses of the
    same rank the earlier cancel date wins: another invoice never postpones a cancellation.
    Statuses outside dunning (held, paused) take the proposal as it is.
    """
    if current not in _RANK or proposed not in _RANK:
        return proposed, proposed_cancel_at
    if _RANK[proposed] < _RANK[current]:
        return current, current_cancel_at
    if _RANK[proposed] == _RANK[current]:
        dates = [d for d in (current_cancel_at, proposed_cancel_at) if d is not None]
        return proposed, min(dates) if dates else None
    return proposed, proposed_cancel_at
