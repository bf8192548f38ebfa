"""The chaos run, short form (CI): real processes killed at random, worker clocks drifted
(-15 s and +5 s: more than the 3 s send lease either way), the run's own PostgreSQL and
Redis restarted, a week's time jump, the sandbox injecting faults; then the invariants,
from the sandbox ledger and the database, and ``billing audit`` as an operator runs it.

The full run is ``python scripts/chaos.py --subscriptions 2000``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chaos.plan import event_order
from tests.chaos.run import (
    AttemptRow,
    ChaosConfig,
    ChaosError,
    InvoiceRow,
    OrderRow,
    SubscriptionRow,
    audit,
    run_chaos,
)

# -- the audit catches what it must (pure, fast) ------------------------------------------


def _clean() -> tuple[list[OrderRow], list[AttemptRow], list[InvoiceRow], list[SubscriptionRow]]:
    subscriptions = [
        SubscriptionRow(1, "active", "approve-1"),
        SubscriptionRow(2, "suspended", "insufficient-2"),
        SubscriptionRow(3, "canceled", "notfound-3"),
    ]
    invoices = [
        InvoiceRow(10, 1, "paid"),
        InvoiceRow(20, 2, "open"),
        InvoiceRow(30, 3, "uncollectible"),
    ]
    attempts = [
        AttemptRow(100, 10, "10-1-a", "failed"),
        AttemptRow(101, 10, "10-2-b", "paid"),
        AttemptRow(200, 20, "20-1-c", "declined"),
        AttemptRow(300, 30, "30-1-d", "declined"),
    ]
    orders = [OrderRow("10-2-b", "DEPOSITED"), OrderRow("20-1-c", "DECLINED")]
    return orders, attempts, invoices, subscriptions


def test_a_clean_history_passes_and_is_counted() -> None:
    result = audit(*_clean())
    assert result.ok, result.violations
    assert result.ledger_deposited == 1
    assert result.invoices_by_status == {"paid": 1, "open": 1, "uncollectible": 1}
    assert result.open_by_step == {"suspended": 1}
    assert result.attempts_by_state["paid"] == 1


def test_a_second_deposit_for_one_invoice_fails_unless_flagged_for_refund() -> None:
    orders, attempts, invoices, subscriptions = _clean()
    attempts[0] = AttemptRow(100, 10, "10-1-a", "paid")
    orders.append(OrderRow("10-1-a", "DEPOSITED"))
    result = audit(orders, attempts, invoices, subscriptions)
    assert any("[1 double charge]" in v for v in result.violations)

    attempts[0] = AttemptRow(100, 10, "10-1-a", "paid", needs_refund=True)
    result = audit(orders, attempts, invoices, subscriptions)
    assert result.ok, result.violations
    assert result.double_charges_flagged == 1


def test_money_taken_but_recorded_failed_is_a_lost_charge() -> None:
    orders, attempts, invoices, subscriptions = _clean()
    orders.append(OrderRow("10-1-a", "DEPOSITED"))  # attempt 100 says "failed"
    orders.append(OrderRow("nobody-knows", "DEPOSITED"))
    result = audit(orders, attempts, invoices, subscriptions)
    lost = [v for v in result.violations if v.startswith("    order")]
    assert len(lost) == 2
    assert any("[2 lost charge] 2 case(s)" in v for v in result.violations)


def test_a_paid_attempt_without_a_deposit_is_a_phantom_payment() -> None:
    orders, attempts, invoices, subscriptions = _clean()
    orders = [o for o in orders if o.order_number != "10-2-b"]
    result = audit(orders, attempts, invoices, subscriptions)
    assert any("[2 phantom payment]" in v for v in result.violations)


def test_an_open_invoice_without_a_next_step_or_stuck_attempt_fails() -> None:
    orders, attempts, invoices, subscriptions = _clean()
    subscriptions[1] = SubscriptionRow(2, "past_due", "insufficient-2")  # no retry planned
    attempts.append(AttemptRow(301, 30, "30-2-e", "sending"))
    attempts.append(AttemptRow(302, 30, "30-3-f", "unknown", next_check_at=None))
    result = audit(orders, attempts, invoices, subscriptions)
    text = "\n".join(result.violations)
    assert "[3 invoice state]" in text
    assert "[4 stuck attempt] 2 case(s)" in text


def test_an_approved_card_that_did_not_end_paid_is_a_lost_invoice() -> None:
    orders, attempts, invoices, subscriptions = _clean()
    subscriptions[0] = SubscriptionRow(1, "suspended", "approve-1")
    invoices[0] = InvoiceRow(10, 1, "open")
    attempts[1] = AttemptRow(101, 10, "10-2-b", "declined")
    orders = [o for o in orders if o.order_number != "10-2-b"]
    result = audit(orders, attempts, invoices, subscriptions)
    assert any("[3 wrong end]" in v for v in result.violations)


def test_a_newer_invoice_planned_before_its_subscription_was_suspended_waits_for_a_card() -> None:
    orders, attempts, invoices, subscriptions = _clean()
    invoices.append(InvoiceRow(21, 2, "open", next_attempt_at=datetime(2027, 1, 1, tzinfo=UTC)))
    result = audit(orders, attempts, invoices, subscriptions)
    assert result.ok, result.violations
    assert result.open_by_step["suspended (plan on hold)"] == 1
    # ... but an active subscription's open invoice with nothing planned has no next step.
    subscriptions[0] = SubscriptionRow(1, "active", "approve-1")
    invoices.append(InvoiceRow(11, 1, "open"))
    assert any(
        "[3 invoice state]" in v
        for v in audit(orders, attempts, invoices, subscriptions).violations
    )


def test_restarts_and_time_jumps_are_spread_and_never_at_once() -> None:
    assert event_order(4, 1, 1) == ["jump", "pg", "jump", "jump", "redis", "jump"]
    assert event_order(1, 1, 1) == ["pg", "jump", "redis"]
    assert event_order(0, 1, 0) == ["pg"]
    assert event_order(2, 0, 0) == ["jump", "jump"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ChaosError):
        ChaosConfig(database_url="postgresql://x/y", subscriptions=0)
    with pytest.raises(ChaosError):
        ChaosConfig(database_url="postgresql://x/y", kill_every=(3.0, 1.0))
    with pytest.raises(ChaosError):
        ChaosConfig(postgres_stop_mode="smart")
    with pytest.raises(ChaosError):
        ChaosConfig(time_jumps=(0.0,))
    with pytest.raises(ChaosError):
        ChaosConfig(clock_offsets=())


# -- the short run ------------------------------------------------------------------------


@pytest.mark.chaos
def test_short_chaos_run_never_charges_twice_and_loses_nothing(tmp_path: Path) -> None:
    config = ChaosConfig(
        subscriptions=150,
        seconds=30,
        seed=20260101,
        clock_offsets=(-15.0, 5.0),
        time_jumps=(7.0,),
        settle_timeout=150,
        workdir=tmp_path / "chaos",
    )
    result = run_chaos(config, echo=print)
    print(result.table())
    if not result.ok:
        print(result.log_tails(60))
    assert result.ok, "\n".join(result.violations)
    assert result.billing_audit_exit == 0
    assert result.audit.subscriptions == 150
    assert result.workers_killed >= 3
    assert result.redis_restarts == 1
    assert result.postgres_restarts == 1
    assert result.jumps == 1
    # A week later every daily and weekly subscription that was still charged fell due
    # again, monthly ones did not: several invoices per subscription, each audited.
    assert set(result.invoices_by_schedule) == {"monthly", "weekly", "daily"}
    assert result.audit.invoices > 150
    assert result.audit.double_deposits == 0
    assert result.audit.ledger_deposited == result.audit.invoices_by_status["paid"]
    # Every behaviour of the mix showed up and ended as documented.
    assert result.audit.invoices_by_status["paid"] > 100
    assert (
        result.audit.open_by_step["suspended"] + result.audit.open_by_step["needs_payment_method"]
        > 0
    )
