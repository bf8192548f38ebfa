"""A scheduler that was down, a start in the past, a schedule change inside a paid period,
schedules that skip months or never fire: what the customer is charged."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.domain.dunning_policy import DEFAULT_POLICY, CatchUpMode, CatchUpPolicy
from billing.domain.periods import schedule_warnings, validate_cron
from billing.domain.policy_file import load_policy, parse_policy
from billing.domain.subscription import NewSubscription
from billing.errors import ConfigurationError, ValidationError
from tests.support.period_world import FAST_POLICY, period_world

ROOT = Path(__file__).resolve().parents[3]
START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_after_three_days_down_an_hourly_subscription_is_charged_once(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        sub_id = world.subscribe("0 * * * *", "UTC")
        world.tick(seconds=3600)  # 01:00: billed
        world.tick(seconds=3 * 86400)  # the scheduler comes back three days later
        periods = [i.period_start for i in world.invoices(sub_id)]
        assert periods == [START + timedelta(hours=1), START + timedelta(hours=73)]
        assert len(world.gateway.payment_calls) == 2
        skipped = world.events("period_skipped", sub_id)
        assert len(skipped) == 71
        assert "2026-12-01 02:00 UTC" in skipped[0].reason
        assert "2026-12-04 00:00 UTC" in skipped[-1].reason
        assert world.sub(sub_id).next_charge_at == START + timedelta(hours=74)


def test_catch_up_all_bills_every_missed_period(tmp_path: Path) -> None:
    policy = replace(load_policy(FAST_POLICY), catch_up=CatchUpPolicy(CatchUpMode.ALL))
    with period_world(tmp_path, START, policy) as world:
        sub_id = world.subscribe("0 * * * *", "UTC")
        world.tick(seconds=3600 + 3 * 86400)
        assert len(world.invoices(sub_id)) == 73
        assert world.events("period_skipped", sub_id) == []


def test_a_start_in_the_past_bills_only_the_latest_period(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        sub_id = world.subscribe("0 * * * *", "UTC", start_at=START - timedelta(hours=20))
        world.tick()
        assert [i.period_start for i in world.invoices(sub_id)] == [START]
        assert len(world.gateway.payment_calls) == 1
        assert len(world.events("period_skipped", sub_id)) == 20


def test_a_schedule_change_inside_a_paid_period_does_not_charge_that_time_again(
    tmp_path: Path,
) -> None:
    with period_world(tmp_path, START + timedelta(hours=3)) as world:
        sub_id = world.subscribe("0 3 1 * *", "UTC", start_at=world.clock())
        world.tick()  # December paid on the 1st, 03:00
        world.tick(seconds=86400)
        view = world.app.actions.subscriptions.update(
            sub_id, actor="ops", reason="bill on the 5th", schedule="0 3 5 * *"
        )
        assert view["next_charge_at"] == "2027-01-05T03:00:00+00:00"
        world.run_until(START + timedelta(days=10), step=timedelta(hours=6))
        assert len(world.invoices(sub_id)) == 1
        assert len(world.gateway.payment_calls) == 1


def test_a_daily_schedule_changed_in_a_paid_day_starts_the_next_day(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        sub_id = world.subscribe("0 3 * * *", "UTC")
        world.run_until(START + timedelta(hours=4))  # 03:00 paid
        world.app.actions.subscriptions.update(
            sub_id, actor="ops", reason="noon", schedule="0 12 * * *"
        )
        world.run_until(START + timedelta(days=1, hours=13))
        periods = [i.period_start for i in world.invoices(sub_id)]
        assert periods == [START + timedelta(hours=3), START + timedelta(days=1, hours=12)]


# -- schedules that skip months or never fire ---------------------------------------------------


def test_a_day_31_schedule_warns_at_create_and_update(tmp_path: Path) -> None:
    with period_world(tmp_path, START) as world:
        new = NewSubscription("cust-1", "approve-1", 100, "0 3 31 * *", timezone="UTC")
        created = world.app.actions.subscriptions.create(new, actor="crm", reason="signup").body
        expected = (
            "'0 3 31 * *' skips months with fewer than 31 days; "
            "use 'L' for the last day of the month"
        )
        assert created["warnings"] == [expected]
        view = world.app.actions.subscriptions.update(
            created["id"], actor="ops", reason="x", schedule="0 3 L * *"
        )
        assert view["warnings"] == []
        view = world.app.actions.subscriptions.update(
            created["id"], actor="ops", reason="x", schedule="0 3 30 * *"
        )
        assert view["warnings"] == [expected.replace("31", "30")]


@pytest.mark.parametrize(
    ("cron", "warned"),
    [
        ("0 3 31 * *", True),
        ("0 3 29 * *", True),
        ("0 3 30 1-3 *", True),
        ("0 3 31 1,3,5 *", False),
        ("0 3 28 * *", False),
        ("0 3 L * *", False),
        ("0 3 1,31 * *", False),
        ("0 3 31 * 1", False),  # OR-ed with Mondays: no month is skipped
        ("0 * * * *", False),
    ],
)
def test_schedule_warnings(cron: str, warned: bool) -> None:
    assert bool(schedule_warnings(cron)) is warned


def test_the_last_day_of_the_month_fires_every_month(tmp_path: Path) -> None:
    with period_world(tmp_path, datetime(2027, 1, 1, tzinfo=UTC)) as world:
        sub_id = world.subscribe("0 3 L * *", "UTC")
        world.run_until(datetime(2027, 5, 1, tzinfo=UTC), step=timedelta(days=1))
        days = [f"{i.period_start:%m-%d}" for i in world.invoices(sub_id)]
        assert days == ["01-31", "02-28", "03-31", "04-30"]


@pytest.mark.parametrize("cron", ["0 3 30 2 *", "0 3 31 4 *", "0 3 29 2 *"])
def test_a_schedule_that_never_fires_within_a_year_is_refused(tmp_path: Path, cron: str) -> None:
    with pytest.raises(ValidationError, match="366 days"):
        validate_cron(cron)
    with period_world(tmp_path, START) as world:
        with pytest.raises(ValidationError, match="366 days"):
            world.subscribe(cron, "UTC")
        sub_id = world.subscribe("0 3 1 * *", "UTC")
        with pytest.raises(ValidationError, match="366 days"):
            world.app.actions.subscriptions.update(sub_id, actor="ops", reason="x", schedule=cron)
        assert world.sub(sub_id).schedule == "0 3 1 * *"


# -- the policy file -----------------------------------------------------------------------


def test_catch_up_is_latest_by_default_and_in_both_files() -> None:
    assert DEFAULT_POLICY.catch_up.mode is CatchUpMode.LATEST
    assert load_policy(ROOT / "config" / "dunning.toml") == DEFAULT_POLICY
    assert load_policy(ROOT / "config" / "dunning-fast.toml").catch_up.mode is CatchUpMode.LATEST
    assert parse_policy('[catch_up]\nmode = "all"').catch_up.mode is CatchUpMode.ALL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[catch_up]\nmode = "some"', "catch_up.mode: must be one of 'latest', 'all'"),
        ("[catch_up]\nmode = 1", "catch_up.mode: must be one of"),
        ('[catch_up]\nmodes = "all"', "catch_up.modes: unknown key"),
    ],
)
def test_a_bad_catch_up_mode_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_policy(text)
