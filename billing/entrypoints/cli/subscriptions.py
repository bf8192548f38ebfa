"""``billing subscriptions ...``: create, list, show, update, set the card, pause, resume,
cancel.

Each command parses its options, calls one use case with the shell user as the actor,
and renders the answer. It never decides anything about money by itself.
"""

from __future__ import annotations

from datetime import datetime

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
from billing.errors import ValidationError


@click.group()
def subscriptions() -> None:
    """Create and inspect subscriptions."""


def _parse_start(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"--start-at {value!r} is not ISO 8601 (e.g. 2026-12-01T03:00:00+03:00)"
        ) from None


@subscriptions.command("create")
@click.option("--customer-id", required=True, help="The gateway's clientId for this customer.")
@click.option("--binding-id", required=True, help="The stored card binding (bindingId).")
@click.option("--amount", required=True, help="Minor units: 49900 = 499.00.")
@click.option("--currency", default="643", show_default=True, help="Numeric ISO 4217 code.")
@click.option("--schedule", required=True, help='Cron expression, e.g. "0 3 1 * *".')
@click.option("--timezone", default="Europe/Moscow", show_default=True, help="IANA zone.")
@click.option("--description", default=None)
@click.option("--start-at", default=None, help="First charge time, ISO 8601 with offset.")
@click.option(
    "--merchant-account",
    default="default",
    show_default=True,
    help="The merchant account charged ([merchants.<name>] in the settings); set once.",
)
@click.option("--customer-email", default=None, help="For fiscal receipts (54-FZ); optional.")
@click.option("--customer-phone", default=None, help="For fiscal receipts: +79001234567.")
@click.option(
    "--reason", default="created from the CLI", show_default=True, help="For the audit log."
)
@click.option(
    "--idempotency-key",
    default=None,
    help="Run the same command again with the same key: it creates once.",
)
@json_option
def subscriptions_create(
    customer_id: str,
    binding_id: str,
    amount: str,
    currency: str,
    schedule: str,
    timezone: str,
    description: str | None,
    start_at: str | None,
    merchant_account: str,
    customer_email: str | None,
    customer_phone: str | None,
    reason: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Create a subscription (recorded with your login and the reason)."""
    from billing.domain.subscription import NewSubscription, parse_amount

    new = NewSubscription(
        customer_id=customer_id,
        binding_id=binding_id,
        amount=parse_amount(amount),
        currency=currency,
        schedule=schedule,
        timezone=timezone,
        description=description,
        start_at=_parse_start(start_at),
        merchant_account=merchant_account,
        customer_email=customer_email,
        customer_phone=customer_phone,
    ).validated()
    created = (
        _app()
        .actions.subscriptions.create(
            new, actor=_actor(), reason=reason, idempotency_key=idempotency_key
        )
        .body
    )
    _emit(
        created,
        as_json,
        lambda s: click.echo(
            f"subscription {s['id']} created; first charge at {s['next_charge_at']}"
        ),
    )
    render.warnings(created)


@subscriptions.command("list")
@click.option("--status", default=None, help="Only this status.")
@click.option("--customer-id", default=None, help="Only this customer's subscriptions.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=OFFSET, default=0, show_default=True, help="Rows to skip.")
@json_option
def subscriptions_list(
    status: str | None, customer_id: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """List subscriptions, a page at a time (says on stderr when there is more)."""
    rows = _app().read.list_subscriptions(
        status=status, customer_id=customer_id, limit=limit, offset=offset
    )
    _emit(rows, as_json, render.subscription_table)
    more_notice(len(rows), limit, offset, "billing subscriptions list")


@subscriptions.command("show")
@click.argument("subscription_id", type=ID)
@json_option
def subscriptions_show(subscription_id: int, as_json: bool) -> None:
    """Show a subscription with its invoices, attempts and timeline."""
    _emit(_app().read.show_subscription(subscription_id), as_json, render.subscription_detail)


@subscriptions.command("set-binding")
@click.argument("subscription_id", type=ID)
@click.option("--binding-id", required=True)
@click.option(
    "--reason", default="new card set from the CLI", show_default=True, help="For the audit log."
)
@json_option
def subscriptions_set_binding(
    subscription_id: int, binding_id: str, reason: str, as_json: bool
) -> None:
    """Set a new card binding; a subscription waiting for one is retried at once."""
    view = _app().actions.subscriptions.set_binding(
        subscription_id, binding_id, actor=_actor(), reason=reason
    )
    _emit(view, as_json, lambda s: click.echo(f"subscription {s['id']}: {s['status']}"))


@subscriptions.command("pause")
@click.argument("subscription_id", type=ID)
@reason_option
@json_option
def subscriptions_pause(subscription_id: int, reason: str, as_json: bool) -> None:
    """Pause: no new invoices and no charges until resumed."""
    view = _app().actions.pausing.pause(subscription_id, actor=_actor(), reason=reason)
    _emit(view, as_json, render.changed)


@subscriptions.command("resume")
@click.argument("subscription_id", type=ID)
@reason_option
@json_option
def subscriptions_resume(subscription_id: int, reason: str, as_json: bool) -> None:
    """Resume a paused subscription (paused periods are not billed), or undo a
    cancellation at period end."""
    view = _app().actions.pausing.resume(subscription_id, actor=_actor(), reason=reason)
    _emit(view, as_json, render.changed)


@subscriptions.command("cancel")
@click.argument("subscription_id", type=ID)
@click.option("--at-period-end", is_flag=True, help="Cancel when the current period ends, not now.")
@reason_option
@json_option
def subscriptions_cancel(
    subscription_id: int, at_period_end: bool, reason: str, as_json: bool
) -> None:
    """Cancel now (open invoices become void) or at the end of the current period."""
    view = _app().actions.pausing.cancel(
        subscription_id, actor=_actor(), reason=reason, at_period_end=at_period_end
    )
    _emit(view, as_json, render.changed)


@subscriptions.command("update")
@click.argument("subscription_id", type=ID)
@click.option("--amount", default=None, help="Minor units, from the next invoice on.")
@click.option("--schedule", default=None, help="Cron; the next charge is recomputed.")
@click.option("--timezone", default=None, help="IANA zone; the next charge is recomputed.")
@click.option("--description", default=None, help='"" clears it.')
@click.option("--currency", default=None, help="ISO 4217 numeric code, from the next invoice.")
@click.option("--customer-email", default=None, help='For fiscal receipts; "" clears it.')
@click.option("--customer-phone", default=None, help='For fiscal receipts; "" clears it.')
@reason_option
@json_option
def subscriptions_update(
    subscription_id: int,
    amount: str | None,
    schedule: str | None,
    timezone: str | None,
    description: str | None,
    currency: str | None,
    customer_email: str | None,
    customer_phone: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Change the price, schedule, timezone, description, currency or the customer's
    email/phone for fiscal receipts."""
    from billing.domain.subscription import parse_amount

    view = _app().actions.subscriptions.update(
        subscription_id,
        actor=_actor(),
        reason=reason,
        amount=None if amount is None else parse_amount(amount),
        schedule=schedule,
        timezone=timezone,
        description=description,
        currency=currency,
        customer_email=customer_email,
        customer_phone=customer_phone,
    )
    _emit(view, as_json, render.changed)
    render.warnings(view)
