"""``/api/status`` and ``/api/audit``: is charging running, what needs a person, and who
changed what. Read only: nothing here changes anything or decides about money.
"""

from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator

from billing.entrypoints.http.admin import schemas
from billing.entrypoints.http.admin.auth import Reader
from billing.entrypoints.http.admin.common import Limit, QueryId, Services, router
from billing.entrypoints.http.admin.inputs import no_nul
from billing.services.read.attention import find

system = router("/api", "status")


@system.get("/status")
def status(_who: Reader, app: Services) -> dict[str, Any]:
    """Is charging running (circuit breaker); counts by status; what needs a person."""
    return app.read.status()


@system.get("/audit", response_model=list[schemas.EventOut])
def audit(
    _who: Reader,
    app: Services,
    limit: Limit = 100,
    before_id: QueryId = None,
    subscription_id: QueryId = None,
) -> list[dict[str, Any]]:
    """Changes made by people and the backend, newest first (page with before_id)."""
    return app.read.audit(limit=limit, before_id=before_id, subscription_id=subscription_id)


@system.get("/search", response_model=schemas.SearchOut)
def search(
    _who: Reader,
    app: Services,
    q: Annotated[
        str,
        Query(
            min_length=1, max_length=255, description="subscription id, customer id or orderNumber"
        ),
        AfterValidator(no_nul),
    ],
) -> dict[str, Any]:
    """The subscriptions a subscription id, a customer id or an orderNumber names."""
    return find(app.db, q)
