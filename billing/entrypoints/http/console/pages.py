"""The console's pages (GET): the dashboard, "Needs attention", failing subscriptions, one
subscription, search and the audit log. Lists come a page at a time.

Each page reads through the read models and renders; whether a retry would be refused is
:mod:`billing.services.read.attention`'s answer, shown next to a disabled button. Nothing
here changes anything or decides about money.
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing.entrypoints.http.console.kit import MAX_ID, PAGE_SIZE, Kit, Operator, page_number
from billing.errors import NotFoundError
from billing.services.read.attention import find, needs_attention, retry_refusals
from billing.services.read.dashboard import audit_log, dashboard, failing_subscriptions
from billing.services.read.timeline import describe_timeline


def page_routes(kit: Kit) -> list[Route]:
    deps = kit.deps

    async def home(request: Request, operator: Operator) -> Response:
        data = await run_in_threadpool(
            dashboard, deps.db, deps.clock(), timezone=deps.display_timezone
        )
        attention = await run_in_threadpool(needs_attention, deps.db, deps.clock(), limit=0)
        return kit.page(request, "dashboard.html", data=data, attention=attention)

    async def attention(request: Request, operator: Operator) -> Response:
        data = await run_in_threadpool(needs_attention, deps.db, deps.clock())
        return kit.page(request, "attention.html", data=data)

    async def failing(request: Request, operator: Operator) -> Response:
        number = page_number(request)

        def load() -> tuple[list[dict[str, object]], dict[int, str | None]]:
            rows = failing_subscriptions(
                deps.db, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE
            )
            with deps.db.transaction() as session:
                refused = retry_refusals(session, [int(str(r["id"])) for r in rows])
            return rows, refused

        rows, refused = await run_in_threadpool(load)
        return kit.page(
            request,
            "failing.html",
            rows=rows[:PAGE_SIZE],
            refused=refused,
            page=number,
            more=len(rows) > PAGE_SIZE,
        )

    async def subscription(request: Request, operator: Operator) -> Response:
        sub_id = int(request.path_params["sub_id"])
        if sub_id > MAX_ID:
            return kit.not_found(request, f"subscription {sub_id} does not exist")

        def load() -> dict[str, object]:
            view = deps.app.read.show_subscription(sub_id)
            # Every sentence in the console's one zone, not the subscription's own.
            view["timeline"] = describe_timeline(
                deps.db, sub_id, deps.clock(), deps.app.policy, zone=deps.display_timezone
            )
            return view

        try:
            view = await run_in_threadpool(load)
        except NotFoundError as exc:
            return kit.not_found(request, str(exc))

        def refusal() -> str | None:
            with deps.db.transaction() as session:
                return retry_refusals(session, [sub_id]).get(sub_id)

        return kit.page(
            request,
            "subscription.html",
            sub=view,
            retry_refused=await run_in_threadpool(refusal),
            nonce=secrets.token_urlsafe(16),
        )

    async def search(request: Request, operator: Operator) -> Response:
        query = request.query_params.get("q", "")
        found = await run_in_threadpool(find, deps.db, query)
        ids = found["subscription_ids"]
        if len(ids) == 1:
            return kit.to(f"/subscriptions/{ids[0]}")
        rows = (
            await run_in_threadpool(
                lambda: [deps.app.read.show_subscription(i) for i in ids[:PAGE_SIZE]]
            )
            if ids
            else []
        )
        return kit.page(request, "search.html", query=found["query"], rows=rows)

    async def audit(request: Request, operator: Operator) -> Response:
        people_only = request.query_params.get("all") != "1"
        number = page_number(request)
        rows = await run_in_threadpool(
            lambda: audit_log(
                deps.db,
                limit=PAGE_SIZE + 1,
                offset=(number - 1) * PAGE_SIZE,
                people_only=people_only,
            )
        )
        return kit.page(
            request,
            "audit.html",
            rows=rows[:PAGE_SIZE],
            people_only=people_only,
            page=number,
            more=len(rows) > PAGE_SIZE,
        )

    return [
        Route("/", kit.login_required(home)),
        Route("/attention", kit.login_required(attention)),
        Route("/failing", kit.login_required(failing)),
        Route("/subscriptions/{sub_id:int}", kit.login_required(subscription)),
        Route("/search", kit.login_required(search)),
        Route("/audit", kit.login_required(audit)),
    ]
