"""How the CLI shows answers to people: tables and one-line summaries.

Renderers take the dicts the use cases return (the same ones ``--json`` prints) and only
format them. They never compute a status or an amount, and never call a use case. Every
value goes through :mod:`.output`, so data is never read as markup or terminal control
sequences, and tables are not cut when piped.
"""

from __future__ import annotations

from typing import Any

from billing.entrypoints.cli.output import console, line, table

__all__ = ["console"]


def subscription_table(rows: list[dict[str, Any]]) -> None:
    table(
        [
            "id",
            "customer",
            "binding",
            "amount",
            "cur",
            "schedule",
            "tz",
            "status",
            "next charge (UTC)",
        ],
        [
            [
                s["id"],
                s["customer_id"],
                s["binding"],
                s["amount"],
                s["currency"],
                s["schedule"],
                s["timezone"],
                s["status"],
                s["next_charge_at"],
            ]
            for s in rows
        ],
    )


def subscription_detail(s: dict[str, Any]) -> None:
    subscription_table([s])
    for invoice in s["invoices"]:
        line(
            f"invoice {invoice['id']} period {invoice['period_start']} "
            f"{invoice['amount']} {invoice['currency']}: {invoice['status']}"
            + (f", next attempt {invoice['next_attempt_at']}" if invoice["next_attempt_at"] else "")
        )
        table(
            [
                "#",
                "orderNumber",
                "trigger",
                "state",
                "category",
                "reason",
                "code",
                "action",
                "finished",
            ],
            [
                [
                    a["number"],
                    a["order_number"],
                    a["trigger"],
                    a["state"],
                    a["category"],
                    a["reason"],
                    a["error_code"],
                    a["action_code"],
                    a["finished_at"],
                ]
                for a in invoice["attempts"]
            ],
        )
    line("timeline")
    for e in s["events"]:
        change = f" {e['from'] or ''}→{e['to']}" if e["to"] else ""
        line(f"  {e['at']}  {e['kind']}{change}  {e['reason']}  ({e['actor']})")


def warnings(view: dict[str, Any]) -> None:
    """Warnings about what was just saved (e.g. a schedule that skips months), on stderr."""
    for warning in view.get("warnings", []):
        line(f"warning: {warning}", err=True)


def changed(view: dict[str, Any]) -> None:
    text = f"subscription {view['id']}: {view['status']}"
    if view.get("ends_at"):
        text += f", cancels at {view['ends_at']}"
    elif view.get("next_charge_at"):
        text += f", next charge {view['next_charge_at']}"
    line(text)
    if view.get("voided_invoices"):
        line(f"  voided invoice(s): {', '.join(map(str, view['voided_invoices']))}")
    if view.get("held_attempts"):
        line(f"  withdrawn unsent attempt(s): {', '.join(map(str, view['held_attempts']))}")
    if view.get("charges_in_flight"):
        line(f"  {view['charges_in_flight']} charge(s) already sent will settle by themselves")


def invoice_table(rows: list[dict[str, Any]]) -> None:
    table(
        [
            "id",
            "sub",
            "period (UTC)",
            "amount",
            "cur",
            "status",
            "tries",
            "last failure",
            "next try",
        ],
        [
            [
                i["id"],
                i["subscription_id"],
                i["period_start"],
                i["amount"],
                i["currency"],
                i["status"],
                i["attempt_count"],
                i["last_failure"],
                i["next_attempt_at"],
            ]
            for i in rows
        ],
    )


def invoice_detail(i: dict[str, Any]) -> None:
    invoice_table([i])
    table(
        ["attempt", "#", "orderNumber", "trigger", "state", "reason", "finished"],
        [
            [
                a["id"],
                a["number"],
                a["order_number"],
                a["trigger"],
                a["state"] + (" NEEDS REFUND" if a["needs_refund"] else ""),
                a["reason"],
                a["finished_at"],
            ]
            for a in i["attempts"]
        ],
    )
    for r in i["refunds"]:
        line(
            f"  {r['kind']} {r['id']} of attempt {r['attempt_id']}: {r['amount']} "
            f"{r['currency']} {r['state']} ({r['actor']}: {r['reason']})"
        )


def refund_result(r: dict[str, Any]) -> None:
    text = f"{r['kind']} {r['id']} of attempt {r['attempt_id']}: {r['amount']} {r['currency']}"
    line(f"{text}: {r['state'].upper()}")
    if r.get("message"):
        line(f"  gateway: {r['message']}")
    if r["state"] == "unknown":
        again = f" or send it again (billing refunds retry {r['id']})"
        line(
            "  the outcome is NOT known: settle it by the order's status "
            f"(billing refunds settle {r['id']})" + (again if r["kind"] == "refund" else "")
        )
    if r.get("refundable_left") is not None:
        line(f"  left to refund: {r['refundable_left']}")


def bulk_retry_report(r: dict[str, Any]) -> None:
    ids = ", ".join(str(i) for i in r["subscription_ids"]) or "none"
    verb = "would retry" if r["dry_run"] else "retried"
    line(f"{verb} {r['count']} subscription(s) failing with {r['failure']}: {ids}")
    for skipped in r.get("skipped", []):
        line(f"  skipped {skipped['subscription_id']}: {skipped['error']}")


def reconcile_report(r: dict[str, Any]) -> None:
    results = ", ".join(f"{k}={v}" for k, v in sorted(r["results"].items())) or "nothing"
    line(f"checked {r['checked']} attempt(s): {results}")
    for title, rows in (
        ("needs an operator (too old to settle; never guessed)", r["needs_operator"]),
        ("NEEDS A REFUND (second charge for a paid invoice)", r["needs_refund"]),
    ):
        if not rows:
            continue
        table(
            ["attempt", "invoice", "subscription", "orderNumber", "amount", "state"],
            [
                [
                    row["attempt_id"],
                    row["invoice_id"],
                    row["subscription_id"],
                    row["order_number"],
                    f"{row['amount']} {row['currency']}",
                    row["state"],
                ]
                for row in rows
            ],
            title=title,
        )


def status_summary(s: dict[str, Any]) -> None:
    """``billing status`` for people: is charging running, and what needs a person."""
    charging = s["charging"]
    merchants = s.get("merchant_accounts", [])
    if charging["state"] == "running":
        line("charging: running")
    else:
        probe = charging.get("retry_at") or "at the next scheduler pass"
        word = "PARTLY PAUSED" if charging["state"] == "partly_paused" else "PAUSED"
        line(f"charging: {word} ({charging.get('reason') or 'no reason recorded'})")
        line(f"  next probe of the gateway: {probe}")
    if len(merchants) > 1:
        for m in merchants:
            state = m["state"].upper() if m["state"] != "running" else "running"
            why = f" ({m['reason']}; next probe {m['retry_at']})" if m["state"] == "paused" else ""
            if m["state"] == "not_configured":
                why = f" ({m['reason']})"
            dialect = f", {m['dialect']}" if m.get("dialect") else ""
            line(
                f"  account {m['name']}{dialect}: {state}{why}, {m['subscriptions']} subscriptions"
            )
    for name in ("subscriptions", "invoices", "attempts"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s[name].items())) or "none"
        line(f"{name}: {counts}")
    line(f"attempts waiting for an operator: {s['needs_operator']}")
    line(f"second charges to refund: {s['needs_refund']}")
