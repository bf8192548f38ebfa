"""The ``billing`` command line. Tables for people, ``--json`` for scripts.

Every failure the user can cause ends in one ``error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from billing.errors import BillingError, ConfigurationError, ValidationError
from billing.settings import Settings, load_settings

if TYPE_CHECKING:
    from billing.services.operations import Operations
    from workers.app import App

F = TypeVar("F", bound=Callable[..., Any])
console = Console()


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    return load_settings()


def _app(*, need_broker: bool = False) -> App:
    from workers.app import build_app, configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    if need_broker and not settings.redis_url:
        raise ConfigurationError(
            "BILLING_REDIS_URL is required here (e.g. redis://127.0.0.1:6379/0)"
        )
    return build_app(settings)


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(
        function
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="billing")
def cli() -> None:
    """Recurring billing over an RBS-family acquiring gateway."""


# -- db ---------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations."""
    from billing.storage.database import Database

    database = Database(_settings().database_url)
    database.upgrade(revision)
    click.echo(f"database is at revision {revision}")


# -- subscriptions ------------------------------------------------------------------------------


@cli.group()
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
    as_json: bool,
) -> None:
    """Create a subscription."""
    from billing.services.subscriptions import NewSubscription, parse_amount

    new = NewSubscription(
        customer_id=customer_id,
        binding_id=binding_id,
        amount=parse_amount(amount),
        currency=currency,
        schedule=schedule,
        timezone=timezone,
        description=description,
        start_at=_parse_start(start_at),
    ).validated()
    app = _app()
    created = app.subscriptions.create(new)
    _emit(
        created,
        as_json,
        lambda s: click.echo(
            f"subscription {s['id']} created; first charge at {s['next_charge_at']}"
        ),
    )


def _subscription_table(rows: list[dict[str, Any]]) -> None:
    table = Table(
        "id",
        "customer",
        "binding",
        "amount",
        "cur",
        "schedule",
        "tz",
        "status",
        "next charge (UTC)",
    )
    for s in rows:
        table.add_row(
            str(s["id"]),
            s["customer_id"],
            s["binding"],
            str(s["amount"]),
            s["currency"],
            s["schedule"],
            s["timezone"],
            s["status"],
            s["next_charge_at"] or "-",
        )
    console.print(table)


@subscriptions.command("list")
@click.option("--status", default=None, help="Only this status.")
@json_option
def subscriptions_list(status: str | None, as_json: bool) -> None:
    """List subscriptions."""
    _emit(_app().subscriptions.list(status), as_json, _subscription_table)


def _render_show(s: dict[str, Any]) -> None:
    _subscription_table([s])
    for invoice in s["invoices"]:
        console.print(
            f"[bold]invoice {invoice['id']}[/bold] period {invoice['period_start']} "
            f"{invoice['amount']} {invoice['currency']}: {invoice['status']}"
            + (f", next attempt {invoice['next_attempt_at']}" if invoice["next_attempt_at"] else "")
        )
        table = Table(
            "#",
            "orderNumber",
            "trigger",
            "state",
            "category",
            "reason",
            "code",
            "action",
            "finished",
        )
        for a in invoice["attempts"]:
            table.add_row(
                str(a["number"]),
                a["order_number"],
                a["trigger"],
                a["state"],
                a["category"] or "-",
                a["reason"] or "-",
                a["error_code"] or "-",
                "-" if a["action_code"] is None else str(a["action_code"]),
                a["finished_at"] or "-",
            )
        console.print(table)
    console.print("[bold]timeline[/bold]")
    for e in s["events"]:
        change = f" {e['from'] or ''}→{e['to']}" if e["to"] else ""
        console.print(f"  {e['at']}  {e['kind']}{change}  {e['reason']}  ({e['actor']})")


@subscriptions.command("show")
@click.argument("subscription_id", type=int)
@json_option
def subscriptions_show(subscription_id: int, as_json: bool) -> None:
    """Show a subscription with its invoices, attempts and timeline."""
    _emit(_app().subscriptions.show(subscription_id), as_json, _render_show)


@subscriptions.command("set-binding")
@click.argument("subscription_id", type=int)
@click.option("--binding-id", required=True)
@json_option
def subscriptions_set_binding(subscription_id: int, binding_id: str, as_json: bool) -> None:
    """Set a new card binding; a subscription waiting for one is retried at once."""
    view = _app().subscriptions.set_binding(subscription_id, binding_id)
    _emit(view, as_json, lambda s: click.echo(f"subscription {s['id']}: {s['status']}"))


# -- operations ---------------------------------------------------------------------------------


@cli.command("retry")
@click.argument("subscription_id", type=int, required=False)
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
    ops = _operations(app)
    if subscription_id is not None:
        result = ops.retry(
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
    report = ops.bulk_retry(
        failure,
        actor=_actor(),
        reason=note or f"bulk retry of {failure} from the CLI",
        dry_run=dry_run,
    )

    def render(r: dict[str, Any]) -> None:
        ids = ", ".join(str(i) for i in r["subscription_ids"]) or "none"
        verb = "would retry" if r["dry_run"] else "retried"
        click.echo(f"{verb} {r['count']} subscription(s) failing with {r['failure']}: {ids}")
        for skipped in r.get("skipped", []):
            click.echo(f"  skipped {skipped['subscription_id']}: {skipped['error']}")

    _emit(report, as_json, render)


@cli.command("reconcile")
@json_option
def reconcile(as_json: bool) -> None:
    """Settle unknown outcomes by order status now; list what needs an operator or a refund."""
    from billing.services.reconciliation import reconcile_now

    report = reconcile_now(_app().charger).as_dict()

    def render(r: dict[str, Any]) -> None:
        results = ", ".join(f"{k}={v}" for k, v in sorted(r["results"].items())) or "nothing"
        click.echo(f"checked {r['checked']} attempt(s): {results}")
        for title, rows in (
            ("needs an operator (too old to settle; never guessed)", r["needs_operator"]),
            ("NEEDS A REFUND (second charge for a paid invoice)", r["needs_refund"]),
        ):
            if not rows:
                continue
            table = Table(
                "attempt", "invoice", "subscription", "orderNumber", "amount", "state", title=title
            )
            for row in rows:
                table.add_row(
                    str(row["attempt_id"]),
                    str(row["invoice_id"]),
                    str(row["subscription_id"]),
                    row["order_number"],
                    f"{row['amount']} {row['currency']}",
                    row["state"],
                )
            console.print(table)

    _emit(report, as_json, render)


@cli.command("status")
@json_option
def status(as_json: bool) -> None:
    """Charging state (circuit breaker) and counts by status."""
    from billing.services.status import system_status

    _emit(system_status(_app().db), as_json, lambda d: console.print_json(json.dumps(d)))


@cli.command("scheduler")
@click.option("--once", is_flag=True, help="Make one pass and exit.")
@json_option
def scheduler(once: bool, as_json: bool) -> None:
    """Find what is due and enqueue charges (a loop, or one pass)."""
    from workers.scheduler import run_forever, run_once

    app = _app(need_broker=True)
    if once:
        report = run_once(app)
        _emit(
            report.as_dict(),
            as_json,
            lambda r: click.echo(", ".join(f"{k}={v}" for k, v in r.items())),
        )
        return
    run_forever(app, interval=app.settings.scheduler_interval)


@cli.command("worker")
@click.option("--processes", type=click.IntRange(min=1), default=None)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def worker(processes: int | None, threads: int | None) -> None:
    """Start Dramatiq worker processes for the project's actors."""
    from workers.worker import run

    settings = _settings()
    if not settings.redis_url:
        raise ConfigurationError("BILLING_REDIS_URL is required to run workers")
    run(
        processes or settings.worker_processes,
        threads or settings.worker_threads,
        settings.queue_name,
    )


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True, type=int)
@click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds per call.")
@click.option(
    "--timeout-delay",
    default=30.0,
    show_default=True,
    type=float,
    help="How long 'timeout' bindings stall after charging.",
)
@click.option(
    "--slow-delay",
    default=1.0,
    show_default=True,
    type=float,
    help="Extra delay of 'slow' bindings.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of charges answered with an injected fault (500, timeout, slow).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault draw.")
def sandbox(
    host: str,
    port: int,
    latency: float,
    timeout_delay: float,
    slow_delay: float,
    fault_rate: float,
    seed: int,
) -> None:
    """Serve the local gateway emulator (behaviour chosen by the bindingId's first word)."""
    from billing.sandbox import SandboxConfig, serve

    serve(
        host,
        port,
        SandboxConfig(
            latency=latency,
            timeout_delay=timeout_delay,
            slow_delay=slow_delay,
            fault_rate=fault_rate,
            seed=seed,
        ),
    )


@cli.group()
def callbacks() -> None:
    """The gateway's callback notifications."""


@callbacks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
def callbacks_serve(host: str, port: int) -> None:
    """Receive gateway callbacks: verify the checksum, then reconcile by order status."""
    import uvicorn

    from billing.callbacks import callback_config, create_callback_app

    app = _app(need_broker=True)
    asgi = create_callback_app(
        app.db, app.dispatcher, callback_config(app.settings), clock=app.clock
    )
    # No access log: it would print query strings, checksums included.
    uvicorn.run(asgi, host=host, port=port, access_log=False, log_config=None)


@cli.command("demo")
@click.option("--subscriptions", "count", default=100, show_default=True, type=int)
@click.option("--periods", default=3, show_default=True, type=int)
@json_option
def demo(count: int, periods: int, as_json: bool) -> None:
    """Run the whole pipeline in one process on SQLite and an in-memory broker."""
    from billing.demo import run_demo

    run_demo(count=count, periods=periods, as_json=as_json)


# -- operators and the SaaS backend (issue 4) ---------------------------------------------------


def _actor() -> str:
    """``cli:<login>``: who changed something from this shell, for the audit log."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
    return f"cli:{user}"[:64]


def _operations(app: App) -> Operations:
    from billing.services.operations import Operations

    return Operations(
        app.db,
        gateway=app.gateway,
        policy=app.policy,
        dispatcher=app.dispatcher,
        clock=app.clock,
    )


def reason_option(function: F) -> F:
    return click.option("--reason", required=True, help="Why (kept in the audit log).")(function)


def _changed(view: dict[str, Any]) -> None:
    line = f"subscription {view['id']}: {view['status']}"
    if view.get("ends_at"):
        line += f", cancels at {view['ends_at']}"
    elif view.get("next_charge_at"):
        line += f", next charge {view['next_charge_at']}"
    click.echo(line)
    if view.get("voided_invoices"):
        click.echo(f"  voided invoice(s): {', '.join(map(str, view['voided_invoices']))}")
    if view.get("held_attempts"):
        click.echo(f"  withdrawn unsent attempt(s): {', '.join(map(str, view['held_attempts']))}")
    if view.get("charges_in_flight"):
        click.echo(
            f"  {view['charges_in_flight']} charge(s) already sent will settle by themselves"
        )


@subscriptions.command("pause")
@click.argument("subscription_id", type=int)
@reason_option
@json_option
def subscriptions_pause(subscription_id: int, reason: str, as_json: bool) -> None:
    """Pause: no new invoices and no charges until resumed."""
    view = _operations(_app()).pause(subscription_id, actor=_actor(), reason=reason)
    _emit(view, as_json, _changed)


@subscriptions.command("resume")
@click.argument("subscription_id", type=int)
@reason_option
@json_option
def subscriptions_resume(subscription_id: int, reason: str, as_json: bool) -> None:
    """Resume a paused subscription (paused periods are not billed), or undo a
    cancellation at period end."""
    view = _operations(_app()).resume(subscription_id, actor=_actor(), reason=reason)
    _emit(view, as_json, _changed)


@subscriptions.command("cancel")
@click.argument("subscription_id", type=int)
@click.option("--at-period-end", is_flag=True, help="Cancel when the current period ends, not now.")
@reason_option
@json_option
def subscriptions_cancel(
    subscription_id: int, at_period_end: bool, reason: str, as_json: bool
) -> None:
    """Cancel now (open invoices become void) or at the end of the current period."""
    view = _operations(_app()).cancel(
        subscription_id, actor=_actor(), reason=reason, at_period_end=at_period_end
    )
    _emit(view, as_json, _changed)


@subscriptions.command("update")
@click.argument("subscription_id", type=int)
@click.option("--amount", default=None, help="Minor units, from the next invoice on.")
@click.option("--schedule", default=None, help="Cron; the next charge is recomputed.")
@click.option("--timezone", default=None, help="IANA zone; the next charge is recomputed.")
@click.option("--description", default=None, help='"" clears it.')
@click.option("--currency", default=None, help="ISO 4217 numeric code, from the next invoice.")
@reason_option
@json_option
def subscriptions_update(
    subscription_id: int,
    amount: str | None,
    schedule: str | None,
    timezone: str | None,
    description: str | None,
    currency: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Change the price, schedule, timezone or description."""
    from billing.services.subscriptions import parse_amount

    view = _operations(_app()).update_subscription(
        subscription_id,
        actor=_actor(),
        reason=reason,
        amount=None if amount is None else parse_amount(amount),
        schedule=schedule,
        timezone=timezone,
        description=description,
        currency=currency,
    )
    _emit(view, as_json, _changed)


@cli.group()
def invoices() -> None:
    """Inspect, void and write off invoices."""


def _invoice_table(rows: list[dict[str, Any]]) -> None:
    table = Table(
        "id", "sub", "period (UTC)", "amount", "cur", "status", "tries", "last failure", "next try"
    )
    for i in rows:
        table.add_row(
            str(i["id"]),
            str(i["subscription_id"]),
            i["period_start"] or "-",
            str(i["amount"]),
            i["currency"],
            i["status"],
            str(i["attempt_count"]),
            i["last_failure"] or "-",
            i["next_attempt_at"] or "-",
        )
    console.print(table)


@invoices.command("list")
@click.option("--status", default=None, help="open, paid, void or uncollectible.")
@click.option("--subscription-id", type=int, default=None)
@click.option("--failure", default=None, help="Last failure: a category or a reason.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
def invoices_list(
    status: str | None,
    subscription_id: int | None,
    failure: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List invoices, newest first."""
    rows = _operations(_app()).list_invoices(
        status=status, subscription_id=subscription_id, failure=failure, limit=limit
    )
    _emit(rows, as_json, _invoice_table)


def _render_invoice(i: dict[str, Any]) -> None:
    _invoice_table([i])
    table = Table("attempt", "#", "orderNumber", "trigger", "state", "reason", "finished")
    for a in i["attempts"]:
        table.add_row(
            str(a["id"]),
            str(a["number"]),
            a["order_number"],
            a["trigger"],
            a["state"] + (" NEEDS REFUND" if a["needs_refund"] else ""),
            a["reason"] or "-",
            a["finished_at"] or "-",
        )
    console.print(table)
    for r in i["refunds"]:
        console.print(
            f"  {r['kind']} {r['id']} of attempt {r['attempt_id']}: {r['amount']} "
            f"{r['currency']} {r['state']} ({r['actor']}: {r['reason']})"
        )


@invoices.command("show")
@click.argument("invoice_id", type=int)
@json_option
def invoices_show(invoice_id: int, as_json: bool) -> None:
    """Show an invoice with its attempts, refunds and events."""
    _emit(_operations(_app()).show_invoice(invoice_id), as_json, _render_invoice)


@invoices.command("void")
@click.argument("invoice_id", type=int)
@reason_option
@json_option
def invoices_void(invoice_id: int, reason: str, as_json: bool) -> None:
    """Void an open invoice (nobody owes it). Refused if paid or a charge is in flight."""
    view = _operations(_app()).void_invoice(invoice_id, actor=_actor(), reason=reason)
    _emit(view, as_json, lambda i: click.echo(f"invoice {i['id']}: {i['status']}"))


@invoices.command("write-off")
@click.argument("invoice_id", type=int)
@reason_option
@json_option
def invoices_write_off(invoice_id: int, reason: str, as_json: bool) -> None:
    """Write an open invoice off as uncollectible. Refused like void."""
    view = _operations(_app()).write_off_invoice(invoice_id, actor=_actor(), reason=reason)
    _emit(view, as_json, lambda i: click.echo(f"invoice {i['id']}: {i['status']}"))


def _render_refund(r: dict[str, Any]) -> None:
    line = f"{r['kind']} {r['id']} of attempt {r['attempt_id']}: {r['amount']} {r['currency']}"
    click.echo(f"{line}: {r['state'].upper()}")
    if r.get("message"):
        click.echo(f"  gateway: {r['message']}")
    if r["state"] == "unknown":
        click.echo("  the outcome is NOT known: check the order at the gateway before retrying")
    if r.get("refundable_left") is not None:
        click.echo(f"  left to refund: {r['refundable_left']}")


@cli.command("refund")
@click.argument("attempt_id", type=int)
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
    from billing.services.subscriptions import parse_amount

    stored = _operations(_app()).refund(
        attempt_id=attempt_id,
        amount=None if amount is None else parse_amount(amount),
        actor=_actor(),
        reason=reason,
        idempotency_key=idempotency_key,
    )
    _emit(stored.body, as_json, _render_refund)
    if stored.body["state"] == "failed":
        sys.exit(1)


@cli.command("reverse")
@click.argument("attempt_id", type=int)
@reason_option
@json_option
def reverse(attempt_id: int, reason: str, as_json: bool) -> None:
    """Cancel a payment made today (UTC) through the gateway's reverse.do."""
    body = _operations(_app()).reverse(attempt_id, actor=_actor(), reason=reason)
    _emit(body, as_json, _render_refund)
    if body["state"] == "failed":
        sys.exit(1)


@cli.group()
def admin() -> None:
    """The admin HTTP API for operators and the SaaS backend."""


@admin.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8091, show_default=True, type=int)
def admin_serve(host: str, port: int) -> None:
    """Serve the admin API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from billing.admin.api import create_admin_app
    from billing.admin.auth import TokenConfig

    app = _app(need_broker=True)
    tokens = app.settings.admin_tokens
    if tokens is None:
        raise ConfigurationError(
            "BILLING_ADMIN_TOKENS is required: name:role:token entries separated by commas"
        )
    asgi = create_admin_app(app, TokenConfig.parse(tokens.get_secret_value()))
    # No access log: request lines would be noise, and no header is ever printed.
    uvicorn.run(asgi, host=host, port=port, access_log=False, log_config=None)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigurationError as exc:
        _fail(str(exc), 2)
    except BillingError as exc:
        _fail(str(exc), 1)


if __name__ == "__main__":
    main()
