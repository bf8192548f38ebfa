"""Changing the schedule or timezone (``billing subscriptions update --schedule/--timezone``):
a period already due is still invoiced, time already paid is not billed again, and the
subscription always has a correct next step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.period_world import period_world

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_a_period_due_but_not_yet_invoiced_survives_a_schedule_change(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        sub_id = world.subscribe("0 3 * * *", "UTC")
        world.clock.advance(hours=3, minutes=5)  # 03:00 is due; no scheduler pass yet
        view = world.app.actions.subscriptions.update(
            sub_id, actor="ops", reason="noon", schedule="0 12 * * *"
        )
        # the 03:00 day is billed; the new schedule starts when that day ends
        assert view["next_charge_at"] == "2026-12-02T12:00:00+00:00"
        world.tick()
        [invoice] = world.invoices(sub_id)
        assert (invoice.period_start, invoice.status) == (START + timedelta(hours=3), "paid")
        world.run_until(START + timedelta(days=2, hours=13), step=timedelta(hours=1))
        periods = [i.period_start for i in world.invoices(sub_id)]
        assert periods == [
            START + timedelta(hours=3),
            START + timedelta(days=1, hours=12),
            START + timedelta(days=2, hours=12),
        ]
        assert len(world.gateway.payment_calls) == 3


def test_a_due_period_survives_a_timezone_change(tmp_path: Path) -> None:
    with period_world(tmp_path, START - timedelta(days=1)) as world:
        sub_id = world.subscribe("0 3 1 * *", "Europe/Moscow")  # 2026-12-01 00:00 UTC
        world.clock.advance(days=1, minutes=1)
        view = world.app.actions.subscriptions.update(
            sub_id, actor="ops", reason="moved", timezone="Europe/Berlin"
        )
        assert view["next_charge_at"] == "2027-01-01T02:00:00+00:00"  # 03:00 CET
        world.tick()
        assert [(i.period_start, i.status) for i in world.invoices(sub_id)] == [(START, "paid")]


def test_a_paid_period_that_is_due_again_is_not_charged_again(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        sub_id = world.subscribe("0 3 * * *", "UTC")
        world.run_until(START + timedelta(hours=4))
        world.set_next_charge(sub_id, START + timedelta(hours=3))  # its paid period, again
        view = world.app.actions.subscriptions.update(
            sub_id, actor="ops", reason="noon", schedule="0 12 * * *"
        )
        assert view["next_charge_at"] == "2026-12-02T12:00:00+00:00"
        world.run_until(START + timedelta(days=1, hours=13), step=timedelta(hours=1))
        assert [i.period_start for i in world.invoices(sub_id)] == [
            START + timedelta(hours=3),
            START + timedelta(days=1, hours=12),
        ]
        assert len(world.gateway.payment_calls) == 2


def test_a_paused_subscription_gets_no_invoice_from_a_schedule_change(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        sub_id = world.subscribe("0 3 * * *", "UTC")
        world.run_until(START + timedelta(hours=4))
        world.app.actions.pausing.pause(sub_id, actor="ops", reason="break")
        world.run_until(START + timedelta(days=2))
        world.app.actions.subscriptions.update(
            sub_id, actor="ops", reason="noon", schedule="0 12 * * *"
        )
        assert len(world.invoices(sub_id)) == 1
        world.app.actions.pausing.resume(sub_id, actor="ops", reason="back")
        assert world.sub(sub_id).next_charge_at == START + timedelta(days=2, hours=12)
