"""``billing clock`` and ``billing webhooks`` from the shell: the clock refused outside test
mode with one error line; in test mode it moves and bills; an endpoint is added (secret
shown once), listed without its secret, disabled and removed; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy

from tests.support.cli import cli_database, run_main


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return cli_database(tmp_path, monkeypatch, user=None)


def test_the_clock_is_refused_outside_test_mode(
    db_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_main(["clock", "advance", "30d"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: the test clock works only in test mode (BILLING_TEST_MODE=true); "
        "a live system runs on real time"
    ]


def test_in_test_mode_the_clock_moves_forward_only(
    db_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TEST_MODE", "true")
    monkeypatch.setenv("BILLING_REDIS_URL", "")
    code, out, _ = run_main(["clock", "set", "2030-01-01T00:00:00+00:00", "--json"], capsys)
    assert code == 0, out
    code, out, _ = run_main(["clock", "advance", "2d", "--json"], capsys)
    assert json.loads(out)["now"] == "2030-01-03T00:00:00+00:00"
    code, out, err = run_main(["clock", "set", "2029-01-01T00:00:00Z"], capsys)
    assert code == 1 and "only moves forward" in err
    code, out, _ = run_main(["clock", "show"], capsys)
    assert out.strip() == "test clock: 2030-01-03T00:00:00+00:00"


def test_webhook_endpoints_from_the_shell(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        ["webhooks", "add", "--url", "https://saas.example/h", "--events", "invoice.paid"], capsys
    )
    assert code == 0, out
    assert "signing secret (shown once, keep it): whsec_" in out
    secret = out.rsplit(" ", 1)[-1].strip()
    code, out, _ = run_main(["webhooks", "list"], capsys)
    assert "https://saas.example/h" in out and "enabled" in out and secret not in out
    code, out, err = run_main(["webhooks", "disable", "1"], capsys)
    assert code == 2 and "Missing option '--reason'" in err  # every change says why
    code, out, _ = run_main(["webhooks", "disable", "1", "--reason", "receiver moved"], capsys)
    assert out.strip() == "endpoint 1: disabled  https://saas.example/h"
    code, out, _ = run_main(["webhooks", "list", "--json"], capsys)
    [endpoint] = json.loads(out)
    assert endpoint["disabled_reason"].endswith(": receiver moved") and "secret" not in endpoint
    code, out, err = run_main(["webhooks", "disable", "1", "--reason", "again"], capsys)
    assert (code, err.strip()) == (1, "error: webhook endpoint 1 is already disabled")
    code, out, _ = run_main(["webhooks", "rotate-secret", "1", "--reason", "leaked"], capsys)
    assert code == 0 and "new signing secret (shown once, keep it): whsec_" in out
    assert out.rsplit(" ", 1)[-1].strip() != secret
    code, out, err = run_main(["webhooks", "add", "--url", "notaurl"], capsys)
    assert code == 1 and err.startswith("error: invalid webhook URL")
    code, out, _ = run_main(["webhooks", "remove", "1", "--reason", "gone"], capsys)
    assert out.strip() == "endpoint 1 removed"
    code, out, err = run_main(["webhooks", "remove", "1", "--reason", "gone"], capsys)
    assert (code, err.strip()) == (1, "error: webhook endpoint 1 does not exist")
    engine = sqlalchemy.create_engine(db_env)
    with engine.connect() as connection:
        audited = [
            (kind, reason, actor)
            for kind, reason, actor in connection.execute(
                sqlalchemy.text("SELECT kind, reason, actor FROM events ORDER BY id DESC")
            )
        ]
    engine.dispose()
    assert all(actor.startswith("cli:") for _, _, actor in audited)
    assert [k for k, _, _ in audited if k.startswith("webhook_endpoint_")] == [
        "webhook_endpoint_removed",
        "webhook_endpoint_secret_rotated",
        "webhook_endpoint_disabled",
        "webhook_endpoint_created",
    ]
    assert ("webhook_endpoint_disabled", "webhook endpoint 1: receiver moved") in [
        (k, r) for k, r, _ in audited
    ]
    assert not any(secret in r for _, r, _ in audited)
