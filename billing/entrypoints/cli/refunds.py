"""``billing refunds ...``: refunds and reversals whose outcome is unknown.

``settle`` asks the order's status about them; ``retry`` sends an unknown refund again
under its own externalRefundId. Each command calls one use case and renders its answer;
whether something may be settled or sent again is the use case's decision, never this
module's.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from billing.entrypoints.cli import render
from billing.entrypoints.cli.common import _actor, _app, _emit, json_option, reason_option


@click.group()
def refunds() -> None:
    """Settle or retry refunds and reversals whose outcome is unknown."""


@refunds.command("settle")
@click.argument("refund_id", type=int, required=False)
@json_option
def settle(refund_id: int | None, as_json: bool) -> None:
    """Settle unknown refunds (all, or REFUND_ID) by the order's status at the gateway."""
    rows = _app().actions.refunds.settle_unknown(refund_id, actor=_actor())
    _emit(rows, as_json, _settled)
    if any(row["state"] == "unknown" for row in rows):
        sys.exit(1)


@refunds.command("retry")
@click.argument("refund_id", type=int)
@reason_option
@json_option
def retry(refund_id: int, reason: str, as_json: bool) -> None:
    """Send an unknown refund again with the same externalRefundId (refunds at most once)."""
    body = _app().actions.refunds.retry_unknown(refund_id, actor=_actor(), reason=reason)
    _emit(body, as_json, render.refund_result)
    if body["state"] != "succeeded":
        sys.exit(1)


def _settled(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no refund or reversal has an unknown outcome")
    for row in rows:
        render.refund_result(row)
        if row.get("note"):
            click.echo(f"  {row['note']}")
