"""Configuration mistakes are refused at start with one line naming the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from billing.auth_tokens import TokenConfig
from billing.errors import ConfigurationError
from billing.settings import load_settings

STRONG = "9f2c41d7e8a64b0c95f1e2d3a4b5c6d7e8f90a1b2c3d4e5f"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BILLING_"):
            monkeypatch.delenv(key)


def _refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and name in message
    return message


@pytest.mark.parametrize(
    "secret",
    [
        "change-me",
        "changeme",
        "secret",
        "CHANGE-ME-change-me-change-me-change-me",  # long, still the example's placeholder
        "a" * 64,
        "short-but-random-9f2c",
        "abababababababababababababababababab",
    ],
)
def test_a_weak_console_session_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    message = _refused(monkeypatch, "BILLING_CONSOLE_SESSION_SECRET", secret)
    assert secret not in message
    assert "openssl rand" in message


def test_a_random_console_session_secret_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_CONSOLE_SESSION_SECRET", STRONG)
    secret = load_settings().console_session_secret
    assert secret is not None and secret.get_secret_value() == STRONG


def test_the_session_cookie_is_secure_unless_explicitly_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().console_https_only is True
    monkeypatch.setenv("BILLING_CONSOLE_HTTPS_ONLY", "false")
    assert load_settings().console_https_only is False


@pytest.mark.parametrize(
    ("value", "hint"),
    [("LOUD", "unknown log level"), ("", "unknown log level"), ("verbose", "DEBUG")],
)
def test_a_bad_log_level_is_refused(monkeypatch: pytest.MonkeyPatch, value: str, hint: str) -> None:
    assert hint in _refused(monkeypatch, "BILLING_LOG_LEVEL", value)


def test_a_log_level_in_lower_case_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "http://127.0.0.1:6379/0",
        "redis://",
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/zero",
        "unix://",
    ],
)
def test_a_malformed_redis_url_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    _refused(monkeypatch, "BILLING_REDIS_URL", url)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/5", "rediss://:pw@cache.internal/0", "unix:///run/r.sock"]
)
def test_good_redis_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("BILLING_REDIS_URL", url)
    assert load_settings().redis_url == url


def test_a_sqlite_file_in_a_missing_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nope' / 'billing.db'}"
    assert "no such directory" in _refused(monkeypatch, "BILLING_DATABASE_URL", url)


def test_a_sqlite_file_in_a_read_only_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access

    def read_only(path: object, mode: int) -> bool:  # as the kernel answers a non-root user
        if Path(str(path)) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", read_only)
    url = f"sqlite:///{folder / 'billing.db'}"
    assert "not writable" in _refused(monkeypatch, "BILLING_DATABASE_URL", url)


def test_a_sqlite_file_in_a_writable_directory_and_memory_are_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for url in (f"sqlite:///{tmp_path / 'billing.db'}", "sqlite://", "sqlite:///:memory:"):
        monkeypatch.setenv("BILLING_DATABASE_URL", url)
        assert load_settings().database_url == url


@pytest.mark.parametrize("name", ["system", "scheduler", "gateway", "Gateway"])
def test_machine_actor_names_are_reserved_for_tokens(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    token = "t0k3n-for-a-person-0000000000001"
    message = _refused(monkeypatch, "BILLING_ADMIN_TOKENS", f"{name}:operator:{token}")
    assert "reserved" in message and token not in message
    with pytest.raises(ConfigurationError, match="reserved"):
        TokenConfig.parse(f"{name}:viewer:{token}")


def test_a_sqlite_path_that_is_a_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert "cannot write" in _refused(monkeypatch, "BILLING_DATABASE_URL", f"sqlite:///{tmp_path}")
