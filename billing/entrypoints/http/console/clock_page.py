"""The console's test clock page (test mode only): what time the clock says, and forms to
set it to a moment or advance it by a duration, running the upcoming, scheduler and webhook
passes at every stop and waiting for the workers, like ``billing clock advance``.

Outside test mode the page says so and offers no form; a POST there is refused by
billing.services.test_clock with its one-line error. Operators only, with a reason
(audited there). Decides nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing.entrypoints.http.console.kit import Kit, Operator, reason
from billing.errors import ConfigurationError
from billing.services.test_clock import settling_step

#: How long one stop waits for the workers before the clock moves on.
SETTLE_SECONDS = 30.0


def clock_routes(kit: Kit) -> list[Route]:
    app = kit.deps.app

    async def page(request: Request, operator: Operator) -> Response:
        try:
            shown = await run_in_threadpool(app.test_clock.show)
            refused = None
        except ConfigurationError as exc:
            shown, refused = None, str(exc)
        return kit.page(request, "clock.html", clock=shown, refused=refused)

    def step() -> Any:
        passes = (app.upcoming.run_pass, app.scheduler.run_pass, app.webhook_delivery.run_pass)
        return settling_step(app.db, passes, settle_for=SETTLE_SECONDS)

    def set_to(operator: Operator, form: dict[str, Any], _target: int) -> str:
        moved = app.test_clock.set(
            str(form.get("when") or ""),
            step=step(),
            actor=operator.name,
            reason=reason(form, ""),
        )
        return f"Test clock set to {moved['now']} ({moved['stops']} stops with a pass each)."

    def advance(operator: Operator, form: dict[str, Any], _target: int) -> str:
        moved = app.test_clock.advance(
            str(form.get("by") or ""),
            step=step(),
            actor=operator.name,
            reason=reason(form, ""),
        )
        return f"Test clock advanced to {moved['now']} ({moved['stops']} stops with a pass each)."

    return [
        Route("/clock", kit.login_required(page)),
        *kit.action_routes(
            [
                ("/clock/set", set_to),
                ("/clock/advance", advance),
            ]
        ),
    ]
