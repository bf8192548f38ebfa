"""Operator commands outside one resource: ``billing resolve`` (an attempt waiting for an
operator), ``billing capture`` / ``billing release`` (a held two-phase order) and
``billing audit`` (the invariant check anyone can run).

They parse, call one use case or read model and render; they decide nothing about money.
``audit`` exits 1 when an invariant fails, so it can guard a cron job or a deploy.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from billing.entrypoints.cli.common import _actor, _app, _emit, json_option, reason_option


@click.command("resolve")
@click.argument("attempt_id", type=int)
@reason_option
@json_option
def resolve(attempt_id: int, reason: str, as_json: bool) -> None:
    """Resolve an attempt waiting for an operator: the gateway is asked first (charged →
    paid; not charged → the invoice may be retried; still pending → refused)."""
    body = _app().actions.resolve.resolve(attempt_id, actor=_actor(), reason=reason)
    _emit(body, as_json, _render_resolved)


def _render_resolved(body: dict[str, Any]) -> None:
    click.echo(
        f"attempt {body['attempt_id']} (invoice {body['invoice_id']}, order "
        f"{body['order_number']}): {body['state']}: {body['message']}"
    )


@click.command("capture")
@click.argument("attempt_id", type=int)
@reason_option
@json_option
def capture(attempt_id: int, reason: str, as_json: bool) -> None:
    """Capture an attempt's held (two-phase, APPROVED) order with deposit.do; recorded as
    paid only once the order status says DEPOSITED."""
    body = _app().actions.held_orders.capture(attempt_id, actor=_actor(), reason=reason)
    _emit(body, as_json, _render_resolved)


@click.command("release")
@click.argument("attempt_id", type=int)
@reason_option
@json_option
def release(attempt_id: int, reason: str, as_json: bool) -> None:
    """Release an attempt's held (two-phase, APPROVED) order with reverse.do: no money is
    taken; the invoice follows its retry schedule (void it to stop charging)."""
    body = _app().actions.held_orders.release(attempt_id, actor=_actor(), reason=reason)
    _emit(body, as_json, _render_resolved)


@click.command("audit")
@json_option
def audit(as_json: bool) -> None:
    """Check the invariants: every open invoice has a next step, no invoice has two unflagged
    payments, every payment is consistent. Exits 1 when one fails."""
    from billing.services.read.audit_check import run_audit

    report = run_audit(_app().db)
    _emit(report.as_dict(), as_json, _render_audit)
    if not report.ok:
        sys.exit(1)


def _render_audit(body: dict[str, Any]) -> None:
    checked = body["checked"]
    click.echo(
        f"checked {checked['open_invoices']} open invoice(s), {checked['paid_attempts']} paid "
        f"attempt(s), {checked['paid_invoices']} paid invoice(s)"
    )
    if body["ok"]:
        click.echo("ok: every invariant holds")
        return
    click.echo(f"FAILED: {len(body['problems'])} problem(s)")
    for problem in body["problems"]:
        click.echo(f"  [{problem['check']}] invoice {problem['invoice_id']}: {problem['message']}")
