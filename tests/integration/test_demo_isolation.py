"""``billing demo`` never touches the real environment: with BILLING_* pointing at a real
Redis, database, gateway and policy file, the demo still runs on its own SQLite, in-memory
broker and sandbox, and the production queue is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from billing.entrypoints.demo import demo_settings, run_demo

pytestmark = pytest.mark.integration


def test_the_demo_reads_no_billing_setting_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "billing.toml"
    config.write_text('gateway_username = "from-the-file"\n')
    monkeypatch.setenv("BILLING_CONFIG_FILE", str(config))
    monkeypatch.setenv("BILLING_REDIS_URL", "redis://10.0.0.1:6379/0")
    monkeypatch.setenv("BILLING_GATEWAY_USERNAME", "production-merchant")
    monkeypatch.setenv("BILLING_GATEWAY_PASSWORD", "production-password")
    monkeypatch.setenv("BILLING_DUNNING_POLICY", str(tmp_path / "missing.toml"))
    monkeypatch.setenv("BILLING_GATEWAY_RATE_LIMIT", "5")
    settings = demo_settings(database_url="sqlite://", gateway_url="http://127.0.0.1:1/x")
    assert settings.redis_url is None
    assert settings.gateway_username == "sandbox"
    assert settings.gateway_password.get_secret_value() == "sandbox"
    assert settings.dunning_policy is None and settings.gateway_rate_limit == 0
    assert settings.database_url == "sqlite://"


def test_the_demo_leaves_the_production_queue_and_database_alone(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path
) -> None:
    production = redis.Redis.from_url(redis_url)
    # A message waiting on the production queue (Dramatiq's Redis layout, queue "billing").
    production.hset("dramatiq:billing.msgs", "m-1", "a production message")
    production.rpush("dramatiq:billing", "m-1")
    database = tmp_path / "production.db"
    monkeypatch.setenv("BILLING_REDIS_URL", redis_url)
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{database}")
    result = run_demo(count=3, periods=1, as_json=True)
    assert result.summary
    assert production.hget("dramatiq:billing.msgs", "m-1") == b"a production message"
    assert production.lrange("dramatiq:billing", 0, -1) == [b"m-1"]
    # No demo message, worker heartbeat or ack ever went through the production Redis.
    assert set(production.keys()) == {b"dramatiq:billing.msgs", b"dramatiq:billing"}
    assert not database.exists()
    production.close()
