"""How the CLI shows answers to people: rich tables and one-line summaries.

Renderers take the dicts the use cases return (the same ones ``--json`` prints) and only
format them. They never compute a status or an amount, and never call a use case.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

console = Console()


def subscription_table(rows: list[dict[str, Any]]) -> None:
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


def subscription_detail(s: dict[str, Any]) -> None:
    subscription_table([s])
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


def warnings(view: dict[str, Any]) -> None:
    """Warnings about what was just saved (e.g. a schedule that skips months), on stderr."""
    for warning in view.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)


def changed(view: dict[str, Any]) -> None:
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


def invoice_table(rows: list[dict[str, Any]]) -> None:
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


def invoice_detail(i: dict[str, Any]) -> None:
    invoice_table([i])
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


def refund_result(r: dict[str, Any]) -> None:
    line = f"{r['kind']} {r['id']} of attempt {r['attempt_id']}: {r['amount']} {r['currency']}"
    click.echo(f"{line}: {r['state'].upper()}")
    if r.get("message"):
        click.echo(f"  gateway: {r['message']}")
    if r["state"] == "unknown":
        again = f" or send it again (billing refunds retry {r['id']})"
        click.echo(
            "  the outcome is NOT known: settle it by the order's status "
            f"(billing refunds settle {r['id']})" + (again if r["kind"] == "refund" else "")
        )
    if r.get("refundable_left") is not None:
        click.echo(f"  left to refund: {r['refundable_left']}")


def bulk_retry_report(r: dict[str, Any]) -> None:
    ids = ", ".join(str(i) for i in r["subscription_ids"]) or "none"
    verb = "would retry" if r["dry_run"] else "retried"
    click.echo(f"{verb} {r['count']} subscription(s) failing with {r['failure']}: {ids}")
    for skipped in r.get("skipped", []):
        click.echo(f"  skipped {skipped['subscription_id']}: {skipped['error']}")


def reconcile_report(r: dict[str, Any]) -> None:
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
