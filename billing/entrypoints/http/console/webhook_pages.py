"""The console's webhook pages: endpoints (list, add, enable, disable, remove, rotate the
signing secret, send a test event), recent deliveries with a "redeliver" button, and the
public events (a filterable list and one event's payload with its deliveries).

Every form is an operator's (viewers only read), CSRF-checked, and calls one method of
billing.services.webhook_endpoints with the operator's name and reason (audited there). A
new signing secret is shown once, on the answer page itself (never in the session cookie,
a redirect or a log line), with ``Cache-Control: no-store``. Decides nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing.entrypoints.http.console.kit import MAX_ID, Kit, Operator, form_problem, reason
from billing.errors import BillingError, NotFoundError, ValidationError
from billing.services.read.event_browser import event_detail, recent_events

RECENT_DELIVERIES = 50


def webhook_routes(kit: Kit) -> list[Route]:
    """The endpoint and delivery pages and forms, and the events pages."""
    return [*endpoint_pages(kit), *endpoint_actions(kit), *event_pages(kit)]


def endpoint_pages(kit: Kit) -> list[Route]:
    hooks = kit.deps.app.webhooks

    async def endpoints(request: Request, operator: Operator) -> Response:
        raw = request.query_params.get("endpoint", "")
        endpoint_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
        failed = request.query_params.get("failed") == "1"

        def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            listed = hooks.list_endpoints()
            recent = hooks.deliveries(
                endpoint_id=endpoint_id, failed=failed, limit=RECENT_DELIVERIES
            )
            return listed, recent

        listed, recent = await run_in_threadpool(load)
        return kit.page(
            request,
            "webhooks.html",
            endpoints=listed,
            deliveries=recent,
            endpoint_filter=endpoint_id,
            failed=failed,
        )

    async def secret_answer(request: Request, operator: Operator) -> Response:
        """Add an endpoint, or rotate one's secret: the secret is on this page only."""
        form = await kit.checked_form(request, operator)
        if isinstance(form, Response):
            return form
        target = int(request.path_params.get("target", 0))
        try:
            problem = form_problem(form)
            if problem or target > MAX_ID:
                raise ValidationError(problem or f"{target} is not an id")
            done = await run_in_threadpool(_add_or_rotate, kit, operator, form, target)
        except BillingError as exc:
            request.session["flash"] = f"Not done: {exc}"
            return kit.to("/webhooks")
        answer = kit.page(request, "webhook_secret.html", endpoint=done, rotated=target > 0)
        answer.headers["Cache-Control"] = "no-store"
        return answer

    post = ["POST"]
    return [
        Route("/webhooks", kit.login_required(endpoints)),
        Route("/webhooks/new", kit.login_required(secret_answer), methods=post),
        Route("/webhooks/{target:int}/rotate", kit.login_required(secret_answer), methods=post),
    ]


def _add_or_rotate(kit: Kit, operator: Operator, form: dict[str, Any], target: int) -> Any:
    hooks = kit.deps.app.webhooks
    if target:
        return hooks.rotate_secret(
            target, actor=operator.name, reason=reason(form, "secret rotated")
        )
    return hooks.add(
        str(form.get("url") or ""),
        str(form.get("events") or "").strip() or None,
        str(form.get("description") or "").strip() or None,
        actor=operator.name,
        reason=reason(form, "webhook endpoint added"),
    )


def endpoint_actions(kit: Kit) -> list[Route]:
    hooks = kit.deps.app.webhooks

    def enable(operator: Operator, form: dict[str, Any], endpoint_id: int) -> str:
        why = reason(form, "")
        hooks.set_enabled(endpoint_id, True, actor=operator.name, reason=why)
        return f"Webhook endpoint {endpoint_id} enabled."

    def disable(operator: Operator, form: dict[str, Any], endpoint_id: int) -> str:
        hooks.set_enabled(endpoint_id, False, actor=operator.name, reason=reason(form, ""))
        return f"Webhook endpoint {endpoint_id} disabled: its events wait for it."

    def remove(operator: Operator, form: dict[str, Any], endpoint_id: int) -> str:
        hooks.remove(endpoint_id, actor=operator.name, reason=reason(form, ""))
        return f"Webhook endpoint {endpoint_id} removed with its delivery log."

    def test(operator: Operator, form: dict[str, Any], endpoint_id: int) -> str:
        sent = hooks.test(endpoint_id)
        verdict = "answered" if sent["ok"] else "FAILED:"
        detail = f"HTTP {sent['status']}" if sent["status"] else (sent["error"] or "no answer")
        return f"Test event {sent['event_id']} to endpoint {endpoint_id}: {verdict} {detail}."

    def redeliver(operator: Operator, form: dict[str, Any], delivery_id: int) -> str:
        done = hooks.redeliver(
            delivery_id, actor=operator.name, reason=reason(form, "redelivered by hand")
        )
        return f"Delivery {delivery_id} of {done['event_id']} enqueued again."

    return kit.action_routes(
        [
            ("/webhooks/{target:int}/enable", enable),
            ("/webhooks/{target:int}/disable", disable),
            ("/webhooks/{target:int}/remove", remove),
            ("/webhooks/{target:int}/test", test),
            ("/webhooks/deliveries/{target:int}/redeliver", redeliver),
        ]
    )


def event_pages(kit: Kit) -> list[Route]:
    db = kit.deps.db

    async def events(request: Request, operator: Operator) -> Response:
        params = request.query_params
        types = params.get("type", "").strip()
        raw_sub = params.get("subscription", "").strip()
        before = params.get("before") or None
        try:
            if raw_sub and not (raw_sub.isascii() and raw_sub.isdigit() and len(raw_sub) < 19):
                raise ValidationError(f"{raw_sub[:40]!r} is not a subscription id")
            found = await run_in_threadpool(
                lambda: recent_events(
                    db,
                    types=types or None,
                    subscription_id=int(raw_sub) if raw_sub else None,
                    before=before,
                )
            )
        except ValidationError as exc:
            return kit.page(request, "events.html", 400, rows=[], older=None, problem=str(exc))
        return kit.page(request, "events.html", rows=found.rows, older=found.older, problem=None)

    async def event(request: Request, operator: Operator) -> Response:
        try:
            shown = await run_in_threadpool(event_detail, db, request.path_params["event_id"])
        except NotFoundError as exc:
            return kit.not_found(request, str(exc))
        return kit.page(request, "event.html", event=shown)

    return [
        Route("/events", kit.login_required(events)),
        Route("/events/{event_id:str}", kit.login_required(event)),
    ]
