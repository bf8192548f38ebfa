"""Settings from ``.env`` (as ``config/billing.example.env`` promises), below the
environment; an unknown ``BILLING_*`` variable is a warning naming the closest setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.settings import load_settings, unknown_variable_warnings


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("BILLING_SCHEDULER_INTERVAL", "BILLING_LOG_FORMAT", "BILLING_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_dotenv_is_read_and_the_environment_wins(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / ".env").write_text(
        "# copied from config/billing.example.env\n"
        "BILLING_SCHEDULER_INTERVAL=3\n"
        "BILLING_LOG_FORMAT=json\n"
        "BILLING_GATEWAY_TOKEN=\n"
    )
    settings = load_settings()
    assert (settings.scheduler_interval, settings.log_format) == (3.0, "json")
    assert settings.gateway_token is None
    monkeypatch.setenv("BILLING_SCHEDULER_INTERVAL", "7")
    assert load_settings().scheduler_interval == 7.0


def test_a_bad_value_in_dotenv_is_one_clear_error(in_tmp: Path) -> None:
    (in_tmp / ".env").write_text("BILLING_LOG_FORMAT=yaml\n")
    from billing.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"BILLING_LOG_FORMAT: .*text, json"):
        load_settings()


def test_unknown_variables_are_warned_about_with_the_closest_name(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / ".env").write_text("BILLING_SCHEDULR_INTERVAL=4\n")
    monkeypatch.setenv("BILLING_WORKER_THREADZ", "3")
    settings = load_settings()
    assert settings.scheduler_interval == 10.0  # the misspelt one changed nothing
    err = capsys.readouterr().err
    assert (
        "warning: unknown setting BILLING_SCHEDULR_INTERVAL is ignored; "
        "did you mean BILLING_SCHEDULER_INTERVAL?" in err
    )
    assert "did you mean BILLING_WORKER_THREADS?" in err


def test_only_unknown_billing_names_are_reported() -> None:
    assert (
        unknown_variable_warnings(
            ["PATH", "BILLING_REDIS_URL", "BILLING_CONFIG_FILE", "BILLING_TEST_REDIS_URL"]
        )
        == []
    )
    assert unknown_variable_warnings(["BILLING_ZZZZ"]) == [
        "unknown setting BILLING_ZZZZ is ignored"
    ]
