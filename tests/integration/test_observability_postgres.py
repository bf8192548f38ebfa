"""Metrics, readiness and heartbeats on real PostgreSQL and Redis: the scrape-time queries
and the heartbeat upsert run on the production database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing.auth_tokens import TokenConfig
from billing.bootstrap import build_app
from billing.entrypoints.http.admin.app import create_admin_app
from billing.services.read.processes import process_status
from billing.settings import Settings
from billing.storage.heartbeats import beat
from tests.support.fakes import FakeGateway

pytestmark = pytest.mark.integration
TOKEN = "viewer-token-0123456789abcdef"


def _get(asgi: object, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.get(path)

    return asyncio.run(go())


def test_metrics_readiness_and_heartbeats_on_postgres(pg_url: str, redis_url: str) -> None:
    app = build_app(Settings(database_url=pg_url, redis_url=redis_url), gateway=FakeGateway())
    try:
        admin = create_admin_app(app, TokenConfig.parse(f"vera:viewer:{TOKEN}"))
        ready = _get(admin, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(_get(admin, "/metrics").text)
            for sample in family.samples
        }
        assert samples["billing_metrics_database_up"] == 1
        assert samples["billing_charging_paused"] == 0
        assert samples["billing_due_backlog_seconds"] == 0
        assert samples["billing_queue_messages"] == 0
        now = datetime.now(UTC)
        for _ in range(2):  # the second beat updates the row
            beat(app.db, "worker", now, started_at=now, host="box-1", pid=7)
        beat(app.db, "scheduler", now, started_at=now, detail={"last_pass_at": now.isoformat()})
        status = process_status(app.db, now, max_age=timedelta(seconds=60))
        assert status["workers"] == {"live": 1, "processes": [{"host": "box-1", "pid": 7}]}
        assert status["scheduler"]["last_pass_at"] == now.isoformat()
    finally:
        app.close()
