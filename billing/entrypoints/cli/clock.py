"""``billing clock show|set|advance``: the test clock (only with BILLING_TEST_MODE=true).

``set`` and ``advance`` stop at every moment something falls due and run a scheduler pass
and a webhook pass there, waiting (up to a minute) for the workers to send what the pass
enqueued, so billing and dunning happen in order. Parses, calls
billing.services.test_clock and prints; decides nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import func, select

from billing.domain.model import AttemptState
from billing.entrypoints.cli.common import _app, _emit, json_option
from billing.storage.tables import ChargeAttempt

if TYPE_CHECKING:
    from billing.bootstrap import App

SETTLE_TIMEOUT = 60.0


@click.group("clock")
def clock() -> None:
    """The test clock every process reads in test mode."""


def _show(data: dict[str, Any]) -> None:
    stops = f" ({data['stops']} stops with a pass each)" if "stops" in data else ""
    click.echo(f"test clock: {data['now']}{stops}")


@clock.command("show")
@json_option
def show(as_json: bool) -> None:
    """What time the test clock says."""
    _emit(_app().test_clock.show(), as_json, _show)


@clock.command("set")
@click.argument("when")
@json_option
def set_command(when: str, as_json: bool) -> None:
    """Move the clock forward to WHEN (ISO 8601), running passes on the way."""
    app = _app()
    _emit(app.test_clock.set(when, step=_stepper(app)), as_json, _show)


@clock.command("advance")
@click.argument("by")
@json_option
def advance(by: str, as_json: bool) -> None:
    """Move the clock forward by BY (30d, 12h, 1w …), running passes on the way."""
    app = _app()
    _emit(app.test_clock.advance(by, step=_stepper(app)), as_json, _show)


def _stepper(app: App) -> Any:
    def step() -> None:
        app.upcoming.run_pass()
        app.scheduler.run_pass()
        app.webhook_delivery.run_pass()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline and _in_flight(app):
            time.sleep(0.2)

    return step


def _in_flight(app: App) -> int:
    with app.db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ChargeAttempt)
                .where(ChargeAttempt.state.in_([AttemptState.PENDING, AttemptState.SENDING]))
            )
            or 0
        )
