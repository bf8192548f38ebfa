"""``billing invoices ...`` and the money commands on them: ``retry``, ``refund``, ``reverse``.

Each command parses its options, calls one use case with the shell user as the actor,
and renders the answer. Whether a charge, refund or reversal is allowed, and what its
result means, is the use case's decision, never this module's.
"""

from __future__ import annotations

import sys

import click

from billing.entrypoints.cli import render
from billing.entrypoints.cli.common import (
    ID,
    OFFSET,
    _actor,
    _app,
    _emit,
    json_option,
    reason_option,
)
from billing.entrypoints.cli.output import more_notice


@click.group()
def invoices() -> None:
    """Inspect, void and write off invoices."""


@invoices.command("list")
@click.option("--status", default=None, help="open, paid, void or uncollectible.")
@click.option("--subscription-id", type=ID, default=None)
@click.option("--failure", default=None, help="Last failure: a category or a reason.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=OFFSET, default=0, show_default=True, help="Rows to skip.")
@json_option
def invoices_list(
    status: str | None,
    subscription_id: int | None,
    failure: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List invoices, newest first, a page at a time (says on stderr when there is more)."""
    rows = _app().read.list_invoices(
        status=status,
        subscription_id=subscription_id,
        failure=failure,
        limit=limit,
        offset=offset,
    )
    _emit(rows, as_json, render.invoice_table)
    more_notice(len(rows), limit, offset, "billing invoices list")


@invoices.command("show")
@click.argument("invoice_id", type=ID)
@json_option
def invoices_show(invoice_id: int, as_json: bool) -> None:
    """Show an invoice with its attempts, refunds and events."""
    _emit(_app().read.show_invoice(invoice_id), as_json, render.invoice_detail)


@invoices.command("void")
@click.argument("invoice_id", type=ID)
@reason_option
@json_option
def invoices_void(invoice_id: int, reason: str, as_json: bool) -> None:
    """Void an open invoice (nobody owes it). Refused if paid or a charge is in flight."""
    view = _app().actions.invoices.void(invoice_id, actor=_actor(), reason=reason)
    _emit(view, as_json, lambda i: click.echo(f"invoice {i['id']}: {i['status']}"))


@invoices.command("write-off")
@click.argument("invoice_id", type=ID)
@reason_option
@json_option
def invoices_write_off(invoice_id: int, reason: str, as_json: bool) -> None:
    """Write an open invoice off as uncollectible. Refused like void."""
    view = _app().actions.invoices.write_off(invoice_id, actor=_actor(), reason=reason)
    _emit(view, as_json, lambda i: click.echo(f"invoice {i['id']}: {i['status']}"))


@click.command("retry")
@click.argument("subscription_id", type=ID, required=False)
@click.option(
    "--all",
    "retry_all",
    is_flag=True,
    help="Every active or past_due subscription whose open invoice last failed with --category.",
)
@click.option(
    "--category",
    "failure",
    default=None,
    help="With --all: the failure to match: transient, soft_decline or merchant_config, "
    "or a reason (insufficient_funds).",
)
@click.option("--dry-run", is_flag=True, help="With --all: only count; change nothing.")
@click.option("--reason", "--note", "note", default=None, help="Why, for the audit log.")
@json_option
def retry(
    subscription_id: int | None,
    retry_all: bool,
    failure: str | None,
    dry_run: bool,
    note: str | None,
    as_json: bool,
) -> None:
    """An operator's manual retry of the open invoice, now (ID), or of many (--all)."""
    if retry_all == (subscription_id is not None):
        raise click.UsageError("give a SUBSCRIPTION_ID or --all (not both)")
    if not retry_all and (failure is not None or dry_run):
        raise click.UsageError("--category and --dry-run go with --all")
    if retry_all and not failure:
        raise click.UsageError(
            "--all needs --category: transient, soft_decline, merchant_config "
            "or a reason such as insufficient_funds"
        )
    app = _app(need_broker=not dry_run)
    if subscription_id is not None:
        result = app.actions.retries.retry(
            subscription_id, actor=_actor(), reason=note or "manual retry from the CLI"
        )
        _emit(
            result,
            as_json,
            lambda r: click.echo(
                f"invoice {r['invoice_id']}: attempt {r['attempt_id']} ({r['order_number']}) "
                "enqueued"
            ),
        )
        return
    assert failure is not None
    report = app.actions.retries.bulk_retry(
        failure,
        actor=_actor(),
        reason=note or f"bulk retry of {failure} from the CLI",
        dry_run=dry_run,
    )

    _emit(report, as_json, render.bulk_retry_report)


@click.command("refund")
@click.argument("attempt_id", type=ID)
@click.option("--amount", default=None, help="Minor units; default: all that is left.")
@reason_option
@click.option(
    "--idempotency-key",
    default=None,
    help="Run the same command again with the same key: it refunds once.",
)
@json_option
def refund(
    attempt_id: int,
    amount: str | None,
    reason: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Refund (part of) a paid attempt through the gateway's refund.do."""
    from billing.domain.subscription import parse_amount

    stored = _app().actions.refunds.refund(
        attempt_id=attempt_id,
        amount=None if amount is None else parse_amount(amount),
        actor=_actor(),
        reason=reason,
        idempotency_key=idempotency_key,
    )
    _emit(stored.body, as_json, render.refund_result)
    if stored.body["state"] == "failed":
        sys.exit(1)


@click.command("reverse")
@click.argument("attempt_id", type=ID)
@reason_option
@json_option
def reverse(attempt_id: int, reason: str, as_json: bool) -> None:
    """Cancel a payment made today (the gateway's banking day) through reverse.do."""
    body = _app().actions.refunds.reverse(attempt_id, actor=_actor(), reason=reason)
    _emit(body, as_json, render.refund_result)
    if body["state"] == "failed":
        sys.exit(1)
