"""``/healthz`` (the process answers), ``/readyz`` (the database is reachable and migrated
to the code's head revision, Redis answers a PING when configured) and ``/metrics`` (the
Prometheus text format) for the admin and callback apps.

None of them needs a token or touches money: readiness only reads the schema version and
pings; a failure is named in one line (never a URL, a password or a token).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing.errors import BillingError
from billing.storage.database import Database
from billing.storage.heartbeats import schema_revisions

log = logging.getLogger("billing.health")

REDIS_TIMEOUT = 2.0


def readiness(db: Database, redis_url: str | None) -> tuple[bool, dict[str, str]]:
    """(ready, one word or line per check)."""
    checks: dict[str, str] = {}
    try:
        current, heads = schema_revisions(db)
    except (SQLAlchemyError, BillingError, OSError) as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    else:
        checks["database"] = "ok"
        if not current:
            checks["migrations"] = "not migrated: run `billing db upgrade`"
        elif current != heads:
            checks["migrations"] = (
                f"at {', '.join(sorted(current))}, code expects {', '.join(sorted(heads))}: "
                "run `billing db upgrade`"
            )
        else:
            checks["migrations"] = "ok"
    if redis_url:
        client = redis.Redis.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        try:
            client.ping()
            checks["redis"] = "ok"
        except (redis.RedisError, OSError) as exc:
            checks["redis"] = f"unreachable ({type(exc).__name__})"
        finally:
            client.close()
    return all(value == "ok" for value in checks.values()), checks


def health_routes(db: Database, redis_url: str | None) -> list[Route]:
    def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readyz(_request: Request) -> Response:  # sync: Starlette runs it in its threadpool
        ready, checks = readiness(db, redis_url)
        if not ready:
            log.warning("not ready: %s", checks)
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]


def metrics_route(collectors: Iterable[Collector]) -> Route:
    """``/metrics``: this process's metrics (the default registry) followed by the
    collectors (database and queue gauges), computed at each scrape."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)

    def metrics(_request: Request) -> Response:
        body = generate_latest(REGISTRY) + generate_latest(registry)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return Route("/metrics", metrics, methods=["GET"])
