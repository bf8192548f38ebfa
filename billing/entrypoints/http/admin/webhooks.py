"""``/api/webhooks``: endpoints (add and rotate-secret show the secret once), deliveries,
redeliver, test.

Operators only for changes, each with the token's name as the actor and the body's reason
(audited); any token may read. Each route calls one method of
billing.services.webhook_endpoints; this module decides nothing.
"""

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from billing.entrypoints.http.admin import schemas
from billing.entrypoints.http.admin.auth import Money, Reader
from billing.entrypoints.http.admin.common import Id, Services, router

webhooks = router("/api/webhooks", "webhooks")


class EndpointIn(BaseModel):
    url: str = Field(max_length=2048)
    events: list[str] | None = None
    description: str | None = Field(default=None, max_length=512)
    reason: str = Field(default="webhook endpoint added", min_length=1, max_length=500)


@webhooks.post("/endpoints", status_code=201)
def add_endpoint(body: EndpointIn, who: Money, app: Services) -> dict[str, Any]:
    """A new endpoint; ``secret`` is in this answer only."""
    events = ",".join(body.events) if body.events else None
    return app.webhooks.add(body.url, events, body.description, actor=who.name, reason=body.reason)


@webhooks.get("/endpoints")
def list_endpoints(_who: Reader, app: Services) -> list[dict[str, Any]]:
    return app.webhooks.list_endpoints()


@webhooks.post("/endpoints/{endpoint_id}/disable")
def disable_endpoint(
    endpoint_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    return app.webhooks.set_enabled(endpoint_id, False, actor=who.name, reason=body.reason)


@webhooks.post("/endpoints/{endpoint_id}/enable")
def enable_endpoint(
    endpoint_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    return app.webhooks.set_enabled(endpoint_id, True, actor=who.name, reason=body.reason)


@webhooks.post("/endpoints/{endpoint_id}/rotate-secret")
def rotate_secret(
    endpoint_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    """A new signing secret, in this answer only; the old one stops signing at once."""
    return app.webhooks.rotate_secret(endpoint_id, actor=who.name, reason=body.reason)


@webhooks.delete("/endpoints/{endpoint_id}")
def remove_endpoint(
    endpoint_id: Id,
    who: Money,
    app: Services,
    reason: Annotated[str, Query(min_length=1, max_length=500)],
) -> dict[str, Any]:
    """Remove an endpoint and its delivery log (``?reason=`` says why, for the audit log)."""
    return app.webhooks.remove(endpoint_id, actor=who.name, reason=reason)


@webhooks.post("/endpoints/{endpoint_id}/test")
def test_endpoint(endpoint_id: Id, _who: Money, app: Services) -> dict[str, Any]:
    return app.webhooks.test(endpoint_id)


@webhooks.get("/deliveries")
def list_deliveries(
    _who: Reader,
    app: Services,
    endpoint_id: Annotated[int | None, Query(ge=1)] = None,
    failed: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return app.webhooks.deliveries(endpoint_id=endpoint_id, failed=failed, limit=limit)


@webhooks.get("/deliveries/{delivery_id}/tries")
def delivery_tries(delivery_id: Id, _who: Reader, app: Services) -> list[dict[str, Any]]:
    return app.webhooks.tries(delivery_id)


@webhooks.post("/deliveries/{delivery_id}/redeliver")
def redeliver(
    delivery_id: Id, body: schemas.ReasonOnly, who: Money, app: Services
) -> dict[str, Any]:
    return app.webhooks.redeliver(delivery_id, actor=who.name, reason=body.reason)
