"""The chaos run's audit: what must be true of the database and the sandbox's ledger after
any run (one charge per invoice, every payment recorded, every open invoice with a next
step). Test machinery, not product code."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

#: The card behaviours of the run (sandbox binding-id prefixes) and their shares.
BINDING_MIX: tuple[tuple[str, float], ...] = (
    ("approve", 0.77),
    ("recover2", 0.08),
    ("stuck", 0.03),  # the first order stays CREATED until decline.do; the retry is paid
    ("insufficient", 0.07),
    ("notfound", 0.05),
)
#: How each behaviour's invoice must end: invoice status, or the subscription status of
#: an invoice still open.
EXPECTED_END: Mapping[str, frozenset[str]] = {
    "approve": frozenset({"paid"}),
    "recover2": frozenset({"paid"}),
    "stuck": frozenset({"paid"}),
    "insufficient": frozenset({"suspended", "uncollectible"}),
    "notfound": frozenset({"needs_payment_method", "uncollectible"}),
}
IN_FLIGHT = ("pending", "sending", "unknown")
#: Subscription statuses for which an open invoice has a documented next step.
WAITING_STATUSES = frozenset({"suspended", "needs_payment_method"})
RETRYING_STATUSES = frozenset({"active", "past_due"})
BILLABLE = ("active", "past_due", "needs_payment_method")


# ---------------------------------------------------------------------------- the audit


@dataclass(frozen=True)
class OrderRow:
    """One order of the sandbox ledger."""

    order_number: str
    state: str


@dataclass(frozen=True)
class AttemptRow:
    id: int
    invoice_id: int
    order_number: str
    state: str
    needs_refund: bool = False
    next_check_at: datetime | None = None


@dataclass(frozen=True)
class InvoiceRow:
    id: int
    subscription_id: int
    status: str
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    status: str
    binding_id: str


@dataclass
class Audit:
    """The counts and every broken invariant found by :func:`audit`."""

    subscriptions: int = 0
    invoices: int = 0
    attempts: int = 0
    ledger_orders: int = 0
    ledger_deposited: int = 0
    invoices_by_status: Counter[str] = field(default_factory=Counter)
    #: Open invoices by their documented next step.
    open_by_step: Counter[str] = field(default_factory=Counter)
    subscriptions_by_status: Counter[str] = field(default_factory=Counter)
    attempts_by_state: Counter[str] = field(default_factory=Counter)
    ledger_by_state: Counter[str] = field(default_factory=Counter)
    #: Second (or later) deposits for one invoice, flagged for refund or not.
    double_deposits: int = 0
    #: Of those, the ones the system flagged for refund.
    double_charges_flagged: int = 0
    #: Attempts still ``unknown`` but with a status check planned.
    unknown_with_check: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def behaviour_of(binding_id: str) -> str:
    """The sandbox behaviour token of a binding id (``approve-chaos-1`` → ``approve``)."""
    return binding_id.split("-", 1)[0].lower()


def audit(
    orders: Sequence[OrderRow],
    attempts: Sequence[AttemptRow],
    invoices: Sequence[InvoiceRow],
    subscriptions: Sequence[SubscriptionRow],
    *,
    max_listed: int = 20,
) -> Audit:
    """Check the invariants; pure. ``max_listed`` caps the examples listed per invariant."""
    result = Audit(
        subscriptions=len(subscriptions),
        invoices=len(invoices),
        attempts=len(attempts),
        ledger_orders=len(orders),
    )
    problems: dict[str, list[str]] = {}

    def fail(invariant: str, text: str) -> None:
        problems.setdefault(invariant, []).append(text)

    by_number = {a.order_number: a for a in attempts}
    attempts_by_invoice: dict[int, list[AttemptRow]] = {}
    for a in attempts:
        attempts_by_invoice.setdefault(a.invoice_id, []).append(a)
        result.attempts_by_state[a.state] += 1
    subs = {s.id: s for s in subscriptions}
    for s in subscriptions:
        result.subscriptions_by_status[s.status] += 1

    # (1) and (2): the bank's ledger against the database.
    deposited_numbers: set[str] = set()
    deposits_by_invoice: dict[int, list[AttemptRow]] = {}
    for order in orders:
        result.ledger_by_state[order.state] += 1
        if order.state != "DEPOSITED":
            continue
        result.ledger_deposited += 1
        deposited_numbers.add(order.order_number)
        attempt = by_number.get(order.order_number)
        if attempt is None:
            fail("2 lost charge", f"order {order.order_number} took money; no attempt has it")
            continue
        deposits_by_invoice.setdefault(attempt.invoice_id, []).append(attempt)
        if attempt.state != "paid":
            fail(
                "2 lost charge",
                f"order {order.order_number} took money; attempt {attempt.id} "
                f"(invoice {attempt.invoice_id}) is recorded {attempt.state}",
            )
    for invoice_id, paid in sorted(deposits_by_invoice.items()):
        if len(paid) <= 1:
            continue
        result.double_deposits += len(paid) - 1
        flagged = sum(1 for a in paid if a.needs_refund)
        if flagged >= len(paid) - 1:
            result.double_charges_flagged += len(paid) - 1
        else:
            numbers = ", ".join(a.order_number for a in paid)
            fail(
                "1 double charge",
                f"invoice {invoice_id} was charged {len(paid)} times ({numbers}); "
                f"{flagged} flagged for refund",
            )
    for a in attempts:
        if a.state == "paid" and a.order_number not in deposited_numbers:
            fail(
                "2 phantom payment",
                f"attempt {a.id} (invoice {a.invoice_id}) is paid; the bank has no deposit "
                f"for order {a.order_number}",
            )

    # (3): every invoice paid, or waiting with a documented next step, or closed.
    # One collection at a time, oldest first: a newer open invoice waits for the oldest
    # (invoices of one subscription are opened in period order, so the lowest id).
    oldest_open: dict[int, int] = {}
    for inv in invoices:
        if inv.status == "open":
            oldest_open[inv.subscription_id] = min(
                oldest_open.get(inv.subscription_id, inv.id), inv.id
            )
    for inv in invoices:
        result.invoices_by_status[inv.status] += 1
        sub = subs.get(inv.subscription_id)
        sub_status = sub.status if sub is not None else "missing"
        own = attempts_by_invoice.get(inv.id, [])
        end: str
        if inv.status == "paid":
            end = "paid"
            if not any(a.state == "paid" and a.order_number in deposited_numbers for a in own):
                fail("3 invoice state", f"invoice {inv.id} is paid with no deposited attempt")
        elif inv.status == "open":
            end = sub_status
            if sub_status in WAITING_STATUSES and inv.next_attempt_at is None:
                result.open_by_step[sub_status] += 1
            elif sub_status in WAITING_STATUSES and not any(a.state in IN_FLIGHT for a in own):
                # A newer invoice whose plan was made before the subscription stopped
                # being charged: nothing is sent while it waits for a card (the scheduler
                # charges only active / past_due subscriptions); a new card voids the plan.
                result.open_by_step[f"{sub_status} (plan on hold)"] += 1
            elif sub_status in RETRYING_STATUSES and inv.next_attempt_at is not None:
                result.open_by_step["retry scheduled"] += 1
            elif any(a.state in IN_FLIGHT for a in own):
                result.open_by_step["charge in flight"] += 1
            elif sub_status in RETRYING_STATUSES and oldest_open[inv.subscription_id] < inv.id:
                result.open_by_step["waiting for an older invoice"] += 1
            else:
                fail(
                    "3 invoice state",
                    f"invoice {inv.id} is open, subscription {inv.subscription_id} is "
                    f"{sub_status}, next attempt {inv.next_attempt_at}: no next step",
                )
        elif inv.status == "uncollectible":
            end = "uncollectible"
            if sub_status != "canceled":
                fail(
                    "3 invoice state",
                    f"invoice {inv.id} is uncollectible but subscription "
                    f"{inv.subscription_id} is {sub_status}",
                )
        else:
            end = inv.status
            fail("3 invoice state", f"invoice {inv.id} is {inv.status}")
        if sub is not None:
            expected = EXPECTED_END.get(behaviour_of(sub.binding_id))
            if expected is not None and end not in expected:
                fail(
                    "3 wrong end",
                    f"invoice {inv.id} ({sub.binding_id}) ended {end}; "
                    f"expected {' or '.join(sorted(expected))}",
                )
    invoiced = {inv.subscription_id for inv in invoices}
    for s in subscriptions:
        if s.id not in invoiced:
            fail("3 invoice state", f"subscription {s.id} fell due but has no invoice")
    paid_invoices = {a.invoice_id for a in attempts if a.state == "paid" and not a.needs_refund}
    statuses = {inv.id: inv.status for inv in invoices}
    for invoice_id in sorted(paid_invoices):
        if statuses.get(invoice_id) != "paid":
            fail(
                "3 invoice state",
                f"invoice {invoice_id} has a paid attempt but is {statuses.get(invoice_id)}",
            )

    # (4): nothing left half-done.
    for a in attempts:
        if a.state in ("pending", "sending"):
            fail("4 stuck attempt", f"attempt {a.id} (invoice {a.invoice_id}) is {a.state}")
        elif a.state == "unknown":
            if a.next_check_at is None:
                fail("4 stuck attempt", f"attempt {a.id} is unknown with no check planned")
            else:
                result.unknown_with_check += 1
        elif a.state == "needs_operator":
            fail("4 stuck attempt", f"attempt {a.id} (invoice {a.invoice_id}) needs an operator")

    for invariant, texts in sorted(problems.items()):
        result.violations.append(f"[{invariant}] {len(texts)} case(s)")
        result.violations.extend(f"    {t}" for t in texts[:max_listed])
        if len(texts) > max_listed:
            result.violations.append(f"    ... and {len(texts) - max_listed} more")
    return result
