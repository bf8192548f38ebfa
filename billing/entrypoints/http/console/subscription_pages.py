"""The console's pages about one subscription (GET): its page (invoices, attempts, the
dunning timeline, the actions an operator may take) and search by subscription id,
customer id or orderNumber.

Reads through the read models and renders; whether a retry would be refused is
:mod:`billing.services.read.attention`'s answer, shown next to a disabled button. Nothing
here changes anything or decides about money.
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing.entrypoints.http.console.kit import MAX_ID, PAGE_SIZE, Kit, Operator
from billing.errors import NotFoundError
from billing.services.read.attention import find, retry_refusals
from billing.services.read.timeline import describe_timeline


def subscription_routes(kit: Kit) -> list[Route]:
    deps = kit.deps

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

    return [
        Route("/subscriptions/{sub_id:int}", kit.login_required(subscription)),
        Route("/search", kit.login_required(search)),
    ]
