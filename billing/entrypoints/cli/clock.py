"""``billing clock show|set|advance``: the test clock (only with BILLING_TEST_MODE=true).

``set`` and ``advance`` stop at every moment something falls due and run a scheduler pass
and a webhook pass there, waiting (up to a minute) for the workers to send what the pass
enqueued, so billing and dunning happen in order. Parses, calls
billing.services.test_clock and prints; decides nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from billing.entrypoints.cli.common import _actor, _app, _emit, json_option
from billing.services.test_clock import settling_step

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
@click.option("--reason", default="test clock set", help="Why (kept in the audit log).")
@json_option
def set_command(when: str, reason: str, as_json: bool) -> None:
    """Move the clock forward to WHEN (ISO 8601), running passes on the way."""
    app = _app()
    moved = app.test_clock.set(when, step=_stepper(app), actor=_actor(), reason=reason)
    _emit(moved, as_json, _show)


@clock.command("advance")
@click.argument("by")
@click.option("--reason", default="test clock advanced", help="Why (kept in the audit log).")
@json_option
def advance(by: str, reason: str, as_json: bool) -> None:
    """Move the clock forward by BY (30d, 12h, 1w …), running passes on the way."""
    app = _app()
    moved = app.test_clock.advance(by, step=_stepper(app), actor=_actor(), reason=reason)
    _emit(moved, as_json, _show)


def _stepper(app: App) -> Any:
    passes = (app.upcoming.run_pass, app.scheduler.run_pass, app.webhook_delivery.run_pass)
    return settling_step(app.db, passes, settle_for=SETTLE_TIMEOUT)
