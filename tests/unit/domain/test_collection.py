"""The collection order of a subscription's open invoices, its next steps, and dunning
moving only forward (billing.domain.collection); soft-decline dunning per card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain.collection import (
    OpenInvoiceFacts,
    StepKind,
    dunning_move,
    next_step,
    to_collect,
)
from billing.domain.dunning import Action, decide
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.model import (
    AttemptSummary,
    AttemptTrigger,
    Category,
    InvoiceStatus,
    Outcome,
    SubscriptionStatus,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
D = timedelta(days=1)
ACTIVE = SubscriptionStatus.ACTIVE
PAST_DUE = SubscriptionStatus.PAST_DUE
SUSPENDED = SubscriptionStatus.SUSPENDED
NEEDS_CARD = SubscriptionStatus.NEEDS_PAYMENT_METHOD
CANCELED = SubscriptionStatus.CANCELED
HELD = SubscriptionStatus.HELD
PAUSED = SubscriptionStatus.PAUSED


def inv(
    id_: int,
    *,
    at: datetime | None = None,
    in_flight: bool = False,
    operator: bool = False,
    status: InvoiceStatus = InvoiceStatus.OPEN,
) -> OpenInvoiceFacts:
    return OpenInvoiceFacts(
        id=id_,
        status=status,
        period_start=NOW + id_ * D,
        next_attempt_at=at,
        in_flight=in_flight,
        needs_operator=operator,
    )


@pytest.mark.parametrize(
    ("invoice", "status", "others", "kind", "waits_for"),
    [
        (inv(1, status=InvoiceStatus.PAID), ACTIVE, [], StepKind.FINAL, None),
        (inv(1, in_flight=True), PAST_DUE, [], StepKind.IN_FLIGHT, None),
        (inv(1, at=NOW), PAST_DUE, [], StepKind.PLANNED, None),
        (inv(1, operator=True), ACTIVE, [], StepKind.WAITING_FOR_OPERATOR, None),
        (inv(1), HELD, [], StepKind.WAITING_FOR_OPERATOR, None),
        (inv(1), PAUSED, [], StepKind.WAITING_FOR_OPERATOR, None),
        (inv(1), SUSPENDED, [], StepKind.WAITING_FOR_CARD, None),
        (inv(1), NEEDS_CARD, [], StepKind.WAITING_FOR_CARD, None),
        (inv(3), PAST_DUE, [inv(1, at=NOW), inv(2)], StepKind.WAITING_FOR_INVOICE, 1),
        (inv(2), ACTIVE, [inv(1, in_flight=True)], StepKind.WAITING_FOR_INVOICE, 1),
        # nothing older is open: nothing would ever charge it
        (inv(2), ACTIVE, [inv(1, status=InvoiceStatus.PAID)], StepKind.NONE, None),
        (inv(1), PAST_DUE, [inv(2, at=NOW)], StepKind.NONE, None),
        (inv(1), ACTIVE, [], StepKind.NONE, None),
    ],
)
def test_the_next_step_of_an_open_invoice(
    invoice: OpenInvoiceFacts,
    status: SubscriptionStatus,
    others: list[OpenInvoiceFacts],
    kind: StepKind,
    waits_for: int | None,
) -> None:
    step = next_step(invoice, status, [invoice, *others])
    assert (step.kind, step.waits_for) == (kind, waits_for)
    assert step.exists == (kind is not StepKind.NONE)


@pytest.mark.parametrize(
    ("status", "invoices", "chosen"),
    [
        (ACTIVE, [inv(1), inv(2), inv(3)], 1),  # oldest first
        (PAST_DUE, [inv(2), inv(1)], 1),
        (ACTIVE, [inv(1, at=NOW), inv(2)], None),  # one collection at a time
        (ACTIVE, [inv(1, in_flight=True), inv(2)], None),
        (ACTIVE, [inv(1, operator=True), inv(2)], None),  # never charged past an operator
        (ACTIVE, [inv(1, status=InvoiceStatus.VOID), inv(2)], 2),
        (SUSPENDED, [inv(1)], None),  # waits for a card
        (NEEDS_CARD, [inv(1)], None),
        (HELD, [inv(1)], None),
        (PAUSED, [inv(1)], None),
        (ACTIVE, [], None),
    ],
)
def test_which_invoice_is_collected_next(
    status: SubscriptionStatus, invoices: list[OpenInvoiceFacts], chosen: int | None
) -> None:
    assert to_collect(status, invoices) == chosen


LATER = NOW + 14 * D
SOONER = NOW + 5 * D


@pytest.mark.parametrize(
    ("current", "current_cancel", "proposed", "proposed_cancel", "expected"),
    [
        (ACTIVE, None, PAST_DUE, None, (PAST_DUE, None)),
        (PAST_DUE, None, SUSPENDED, LATER, (SUSPENDED, LATER)),
        (PAST_DUE, None, NEEDS_CARD, LATER, (NEEDS_CARD, LATER)),
        # a newer invoice's decline never un-suspends nor clears the cancel date
        (SUSPENDED, SOONER, PAST_DUE, None, (SUSPENDED, SOONER)),
        (NEEDS_CARD, SOONER, PAST_DUE, None, (NEEDS_CARD, SOONER)),
        # same rank: the earlier cancel date wins, never postponed
        (SUSPENDED, SOONER, SUSPENDED, LATER, (SUSPENDED, SOONER)),
        (SUSPENDED, SOONER, NEEDS_CARD, LATER, (NEEDS_CARD, SOONER)),
        (NEEDS_CARD, LATER, SUSPENDED, SOONER, (SUSPENDED, SOONER)),
        (SUSPENDED, None, SUSPENDED, LATER, (SUSPENDED, LATER)),
        (PAST_DUE, None, PAST_DUE, None, (PAST_DUE, None)),
        # outside dunning: an operator's statuses take the proposal
        (HELD, None, PAST_DUE, None, (PAST_DUE, None)),
        (PAST_DUE, None, HELD, None, (HELD, None)),
    ],
)
def test_dunning_status_only_moves_forward(
    current: SubscriptionStatus,
    current_cancel: datetime | None,
    proposed: SubscriptionStatus,
    proposed_cancel: datetime | None,
    expected: tuple[SubscriptionStatus, datetime | None],
) -> None:
    assert dunning_move(current, current_cancel, proposed, proposed_cancel) == expected


def _soft(version: int, trigger: AttemptTrigger = AttemptTrigger.RETRY) -> AttemptSummary:
    return AttemptSummary(Category.SOFT_DECLINE, trigger, binding_version=version)


@pytest.mark.parametrize(
    ("history", "binding_version", "action", "reason"),
    [
        # four declines on card 1 used the schedule; card 2 starts a fresh run
        ([_soft(1, AttemptTrigger.SCHEDULED)] + [_soft(1)] * 3, 2, Action.RETRY, "retry 1 of 4"),
        ([_soft(1, AttemptTrigger.SCHEDULED)] + [_soft(1)] * 3, 1, Action.SUSPEND, "all 4"),
        ([_soft(1, AttemptTrigger.SCHEDULED)] + [_soft(1)] * 2, 1, Action.RETRY, "retry 4 of 4"),
        ([_soft(1)] * 4 + [_soft(2)], 2, Action.RETRY, "retry 2 of 4"),
        ([_soft(1)] * 2 + [_soft(2)] * 4, 2, Action.SUSPEND, "all 4 retries declined"),
    ],
)
def test_soft_decline_dunning_is_per_card(
    history: list[AttemptSummary], binding_version: int, action: Action, reason: str
) -> None:
    outcome = Outcome(Category.SOFT_DECLINE, "insufficient_funds")
    decision = decide(DEFAULT_POLICY, history, outcome, NOW, binding_version=binding_version)
    assert decision.action is action
    assert reason in decision.reason
