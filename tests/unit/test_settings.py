"""Settings: environment in, one clear line out when something is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.errors import ConfigurationError
from billing.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("BILLING_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_embedded_sqlite_and_the_local_sandbox() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///billing.db"
    assert settings.redis_url is None
    assert settings.gateway_url.endswith("/payment/rest")


def test_environment_variables_are_read_and_postgres_urls_get_the_psycopg_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_DATABASE_URL", "postgresql://u@db/billing")
    monkeypatch.setenv("BILLING_WORKER_THREADS", "16")
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://u@db/billing"
    assert settings.worker_threads == 16


def test_a_toml_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "billing.toml"
    config.write_text('scheduler_interval = 3.5\nqueue_name = "from_file"\n')
    monkeypatch.setenv("BILLING_CONFIG_FILE", str(config))
    monkeypatch.setenv("BILLING_QUEUE_NAME", "from_env")
    settings = load_settings()
    assert settings.scheduler_interval == 3.5
    assert settings.queue_name == "from_env"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BILLING_SCHEDULER_INTERVAL", "-1", "BILLING_SCHEDULER_INTERVAL"),
        ("BILLING_WORKER_THREADS", "many", "BILLING_WORKER_THREADS"),
        ("BILLING_DATABASE_URL", "mysql://x", "BILLING_DATABASE_URL"),
        ("BILLING_DUNNING_POLICY", "/no/such/policy.toml", "no such file"),
        ("BILLING_CONFIG_FILE", "/no/such/file.toml", "no such file"),
        ("BILLING_STALE_SENDING_AFTER", "10", "longer than the longest gateway call"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_the_gateway_password_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_GATEWAY_PASSWORD", "s3cr3t-pass")
    settings = load_settings()
    assert "s3cr3t-pass" not in repr(settings)
    assert "s3cr3t-pass" not in str(settings)
    assert settings.gateway_password.get_secret_value() == "s3cr3t-pass"


def test_with_a_rate_limit_the_stale_sweep_waits_for_the_slot_wait_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_GATEWAY_RATE_LIMIT", "50")
    monkeypatch.setenv("BILLING_STALE_SENDING_AFTER", "100")  # > 50 s of timeouts, < 110 s
    with pytest.raises(ConfigurationError, match="110s"):
        load_settings()
