"""The console's overview pages (GET): the dashboard, "Needs attention", failing
subscriptions and the audit log (one subscription and search are in :mod:`.subscription_pages`,
webhooks and events in :mod:`.webhook_pages`, the test clock in :mod:`.clock_page`). Lists
come a page at a time.

Each page reads through the read models and renders; whether a retry would be refused is
:mod:`billing.services.read.attention`'s answer, shown next to a disabled button. Nothing
here changes anything or decides about money.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing.entrypoints.http.console.kit import PAGE_SIZE, Kit, Operator, page_number
from billing.services.read.attention import needs_attention, retry_refusals
from billing.services.read.dashboard import audit_log, dashboard, failing_subscriptions


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
        Route("/audit", kit.login_required(audit)),
    ]
