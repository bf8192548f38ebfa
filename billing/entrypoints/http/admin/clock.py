"""``/api/clock``: the test clock over HTTP (test mode only: refused with 409 otherwise).

Moving it runs the upcoming, scheduler and webhook passes at every stop, like ``billing
clock advance``; the workers charge what the passes enqueue. This module parses and calls
billing.services.test_clock; it decides nothing.
"""

from typing import Any

from pydantic import BaseModel, Field

from billing.entrypoints.http.admin.auth import Money, Reader
from billing.entrypoints.http.admin.common import Services, router
from billing.errors import ConfigurationError, ConflictError

clock = router("/api/clock", "test clock")


class AdvanceIn(BaseModel):
    by: str = Field(max_length=32, description="30d, 12h, 1w …")
    reason: str = Field(default="test clock advanced", min_length=1, max_length=500)


class SetIn(BaseModel):
    to: str = Field(max_length=64, description="ISO 8601")
    reason: str = Field(default="test clock set", min_length=1, max_length=500)


def _guard(app: Any) -> None:
    try:
        app.test_clock.show()
    except ConfigurationError as exc:
        raise ConflictError(str(exc)) from None


def _step(app: Any) -> Any:
    def step() -> None:
        app.upcoming.run_pass()
        app.scheduler.run_pass()
        app.webhook_delivery.run_pass()

    return step


@clock.get("")
def show_clock(_who: Reader, app: Services) -> dict[str, Any]:
    _guard(app)
    return app.test_clock.show()


@clock.post("/advance")
def advance_clock(body: AdvanceIn, who: Money, app: Services) -> dict[str, Any]:
    _guard(app)
    return app.test_clock.advance(body.by, step=_step(app), actor=who.name, reason=body.reason)


@clock.post("/set")
def set_clock(body: SetIn, who: Money, app: Services) -> dict[str, Any]:
    _guard(app)
    return app.test_clock.set(body.to, step=_step(app), actor=who.name, reason=body.reason)
