"""What every admin API router shares: the use cases, the id and paging parameters, the
documented error answers, and the one-line router factory.

``Services`` hands a route the composition root the app was built with (``app.state``): its
``actions`` and ``read`` are the one front door. So
routers are plain module-level objects that connect to nothing at import. Nothing here
decides anything about money.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from billing.bootstrap import App
from billing.entrypoints.http.admin import schemas
from billing.entrypoints.http.admin.inputs import (
    Id,
    IdempotencyKey,
    Limit,
    Offset,
    QueryId,
    QueryText,
)

__all__ = [
    "ERRORS",
    "Id",
    "IdempotencyKey",
    "Limit",
    "Offset",
    "QueryId",
    "QueryText",
    "Services",
    "router",
]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorOut} for code in (401, 403, 404, 409, 422, 503)
}


def _services(request: Request) -> App:
    services: App = request.app.state.services
    return services


#: The operators' and the backend's use cases (``actions``, ``read``), as built by bootstrap.
Services = Annotated[App, Depends(_services)]


def router(prefix: str, tag: str) -> APIRouter:
    """A router whose routes all live under ``prefix``, carry ``tag`` and document ERRORS."""
    return APIRouter(prefix=prefix, tags=[tag], responses=ERRORS)
