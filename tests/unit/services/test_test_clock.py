"""The test clock: in test mode one clock stored in the database moves billing forward.
A year of monthly billing (and a bout of dunning) happens in order, driven only by
``advance``, with the expected events; outside test mode it is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from billing.bootstrap import App, build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.subscription import NewSubscription
from billing.errors import ConfigurationError, ConflictError, ValidationError
from billing.services.read.events import list_events
from billing.settings import Settings
from tests.support.fakes import FakeGateway, RecordingDispatcher
from tests.support.world import FAST_TIMEOUTS

START = "2027-01-01T00:00:00+00:00"


class Run:
    def __init__(self, app: App, dispatcher: RecordingDispatcher, gateway: FakeGateway) -> None:
        self.app, self.dispatcher, self.gateway = app, dispatcher, gateway

    def step(self) -> None:
        """What the scheduler and the workers do at each stop."""
        self.app.upcoming.run_pass()
        self.app.scheduler.run_pass()
        while self.dispatcher.charges or self.dispatcher.reconciles:
            charges, self.dispatcher.charges = self.dispatcher.charges, []
            reconciles, self.dispatcher.reconciles = self.dispatcher.reconciles, []
            for attempt_id in charges:
                self.app.charger.charge(attempt_id)
            for attempt_id in reconciles:
                self.app.charger.reconcile(attempt_id)

    def events(self, sub_id: int) -> list[dict[str, Any]]:
        page = list_events(self.app.db, limit=500)
        return [e for e in page.events if e["subscription_id"] == sub_id]


def build(tmp_path: Path, *, test_mode: bool) -> Run:
    dispatcher, gateway = RecordingDispatcher(), FakeGateway()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'billing.db'}",
        test_mode=test_mode,
        **FAST_TIMEOUTS,
    )
    app = build_app(settings, gateway=gateway, policy=DEFAULT_POLICY, dispatcher=dispatcher)
    app.db.upgrade()
    return Run(app, dispatcher, gateway)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    made = build(tmp_path, test_mode=True)
    yield made
    made.app.close()


def test_a_year_of_monthly_billing_driven_only_by_the_clock(run: Run) -> None:
    clock = run.app.test_clock
    clock.set(START, step=run.step)
    assert clock.show()["now"] == START
    new = NewSubscription("cust-1", "approve-1", 49900, "0 3 1 * *", timezone="UTC")
    sub_id = int(run.app.actions.subscriptions.create(new, actor="crm", reason="x").body["id"])
    for _ in range(12):
        clock.advance("30d", step=run.step)  # to 2027-12-27: twelve periods
    events = run.events(sub_id)
    assert [e["type"] for e in events] == ["subscription.created"] + [
        "invoice.upcoming",
        "invoice.created",
        "invoice.paid",
    ] * 12
    assert [e["sequence"] for e in events] == list(range(1, 38))
    assert all(e["livemode"] is False for e in events)
    periods = [datetime(2027, m, 1, 3, tzinfo=UTC) for m in range(1, 13)]
    paid = [e for e in events if e["type"] == "invoice.paid"]
    assert [e["data"]["period_start"] for e in paid] == [p.isoformat() for p in periods]
    # Charged at the due moment, announced three days before: the clock stopped there.
    assert [e["created_at"] for e in paid] == [p.isoformat() for p in periods]
    upcoming = [e for e in events if e["type"] == "invoice.upcoming"]
    # The first charge was 3 hours after signing up: announced at once.
    assert [e["created_at"] for e in upcoming] == [START] + [
        (p - timedelta(days=3)).isoformat() for p in periods[1:]
    ]
    assert [e["data"]["period_start"] for e in upcoming] == [p.isoformat() for p in periods]
    assert upcoming[0]["data"]["amount"] == 49900


def test_dunning_happens_at_its_retry_times_while_the_clock_moves(run: Run) -> None:
    clock = run.app.test_clock
    clock.set(START, step=run.step)
    new = NewSubscription("cust-2", "insufficient-1", 1000, "0 3 1 * *", timezone="UTC")
    sub_id = int(run.app.actions.subscriptions.create(new, actor="crm", reason="x").body["id"])
    clock.advance("30d", step=run.step)
    types = [e["type"] for e in run.events(sub_id)]
    assert types[:5] == [
        "subscription.created",
        "invoice.upcoming",
        "invoice.created",
        "invoice.payment_failed",
        "subscription.past_due",
    ]
    failures = [e for e in run.events(sub_id) if e["type"] == "invoice.payment_failed"]
    assert len(failures) > 1  # retries happened as the clock passed their times
    for before, after in pairwise(failures):
        assert after["created_at"] == before["data"]["failure"]["next_retry_at"]


def test_the_clock_only_moves_forward_and_refuses_bad_input(run: Run) -> None:
    run.app.test_clock.set(START)
    with pytest.raises(ConflictError, match="only moves forward"):
        run.app.test_clock.set("2026-01-01T00:00:00+00:00")
    with pytest.raises(ValidationError, match="invalid duration"):
        run.app.test_clock.advance("a month")
    with pytest.raises(ValidationError, match="invalid time"):
        run.app.test_clock.set("next tuesday")
    assert run.app.test_clock.show()["now"] == START


def test_refused_when_test_mode_is_off(tmp_path: Path) -> None:
    live = build(tmp_path, test_mode=False)
    try:
        for call in (
            live.app.test_clock.show,
            lambda: live.app.test_clock.advance("30d"),
            lambda: live.app.test_clock.set(START),
        ):
            with pytest.raises(ConfigurationError, match="only in test mode"):
                call()
    finally:
        live.app.close()
