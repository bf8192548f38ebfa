"""``/api/status`` and ``/api/audit``: is charging running, what needs a person, and who
changed what. Read only: nothing here changes anything or decides about money.
"""

from typing import Any

from billing.entrypoints.http.admin import schemas
from billing.entrypoints.http.admin.auth import Reader
from billing.entrypoints.http.admin.common import Limit, QueryId, Services, router

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
