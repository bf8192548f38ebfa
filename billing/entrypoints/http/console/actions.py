"""The console's forms (POST) about subscriptions, invoices and charges: retry, pause,
resume, cancel, fix the data, void, write off, refund and resolve (webhook endpoints' forms
are in :mod:`.webhook_pages`, the test clock's in :mod:`.clock_page`). Each calls one use
case with the operator's name and reason and answers with one line of feedback.

Whether an action is allowed, and what it does to invoices and charges, is the use case's
decision, never this module's: it only reads the form (amounts through
:func:`billing.domain.subscription.parse_amount`: ASCII digits, at most 12 of them).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from billing.domain.subscription import parse_amount
from billing.entrypoints.http.console.kit import Kit, Operator, reason


def action_routes(kit: Kit) -> list[Route]:
    """Every form of this module, one registration function per resource."""
    return [*subscription_actions(kit), *invoice_actions(kit), *attempt_actions(kit)]


def subscription_actions(kit: Kit) -> list[Route]:
    app = kit.deps.app

    def retry(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        why = reason(form, "retried from the console")
        result = app.actions.retries.retry(sub_id, actor=operator.name, reason=why)
        return f"Retry of invoice {result['invoice_id']} sent (order {result['order_number']})."

    def pause(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        app.actions.pausing.pause(sub_id, actor=operator.name, reason=reason(form, ""))
        return f"Subscription {sub_id} paused."

    def resume(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        app.actions.pausing.resume(sub_id, actor=operator.name, reason=reason(form, ""))
        return f"Subscription {sub_id} resumed."

    def cancel(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        at_end = form.get("when") == "period_end"
        app.actions.pausing.cancel(
            sub_id, actor=operator.name, reason=reason(form, ""), at_period_end=at_end
        )
        return f"Subscription {sub_id} " + (
            "will be canceled at the end of its period." if at_end else "canceled."
        )

    def update(operator: Operator, form: dict[str, Any], sub_id: int) -> str:
        """Fix the data a held subscription was refused for (then resume it)."""
        raw_amount = str(form.get("amount") or "").strip()
        currency = str(form.get("currency") or "").strip()
        description = form.get("description")
        app.actions.subscriptions.update(
            sub_id,
            actor=operator.name,
            reason=reason(form, ""),
            amount=parse_amount(raw_amount) if raw_amount else None,
            currency=currency or None,
            description=None if description is None else str(description),
        )
        return f"Subscription {sub_id} updated."

    return kit.action_routes(
        [
            ("/subscriptions/{target:int}/retry", retry),
            ("/subscriptions/{target:int}/pause", pause),
            ("/subscriptions/{target:int}/resume", resume),
            ("/subscriptions/{target:int}/cancel", cancel),
            ("/subscriptions/{target:int}/update", update),
        ]
    )


def invoice_actions(kit: Kit) -> list[Route]:
    app = kit.deps.app

    def void(operator: Operator, form: dict[str, Any], invoice_id: int) -> str:
        app.actions.invoices.void(invoice_id, actor=operator.name, reason=reason(form, ""))
        return f"Invoice {invoice_id} voided."

    def write_off(operator: Operator, form: dict[str, Any], invoice_id: int) -> str:
        app.actions.invoices.write_off(invoice_id, actor=operator.name, reason=reason(form, ""))
        return f"Invoice {invoice_id} written off."

    return kit.action_routes(
        [
            ("/invoices/{target:int}/void", void),
            ("/invoices/{target:int}/write-off", write_off),
        ]
    )


def attempt_actions(kit: Kit) -> list[Route]:
    app = kit.deps.app

    def refund(operator: Operator, form: dict[str, Any], attempt_id: int) -> str:
        raw = str(form.get("amount") or "").strip()
        stored = app.actions.refunds.refund(
            actor=operator.name,
            reason=reason(form, ""),
            attempt_id=attempt_id,
            amount=parse_amount(raw) if raw else None,
            # One key per rendered form: a double click refunds once.
            idempotency_key=str(form.get("nonce") or "") or None,
        )
        state = stored.body.get("state", "requested")
        return f"Refund of attempt {attempt_id}: {state}."

    def resolve(operator: Operator, form: dict[str, Any], attempt_id: int) -> str:
        done = app.actions.resolve.resolve(attempt_id, actor=operator.name, reason=reason(form, ""))
        return f"Attempt {attempt_id} resolved: {done['message']}"

    def capture(operator: Operator, form: dict[str, Any], attempt_id: int) -> str:
        done = app.actions.held_orders.capture(
            attempt_id, actor=operator.name, reason=reason(form, "")
        )
        return f"Attempt {attempt_id}: {done['message']}"

    def release(operator: Operator, form: dict[str, Any], attempt_id: int) -> str:
        done = app.actions.held_orders.release(
            attempt_id, actor=operator.name, reason=reason(form, "")
        )
        return f"Attempt {attempt_id}: {done['message']}"

    return kit.action_routes(
        [
            ("/attempts/{target:int}/refund", refund),
            ("/attempts/{target:int}/resolve", resolve),
            ("/attempts/{target:int}/capture", capture),
            ("/attempts/{target:int}/release", release),
        ]
    )
