"""The ``billing`` command line after its split into one module per command group: every
command is still there, ``python -m billing`` runs it, and commands still say what they did.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.entrypoints.cli.main import cli

COMMANDS = {
    "admin",
    "audit",
    "capture",
    "callbacks",
    "db",
    "demo",
    "health",
    "invoices",
    "reconcile",
    "refund",
    "release",
    "resolve",
    "refunds",
    "retry",
    "reverse",
    "sandbox",
    "scheduler",
    "status",
    "subscriptions",
    "worker",
    "events",
    "webhooks",
    "clock",
}


def test_every_command_is_registered() -> None:
    assert set(cli.commands) == COMMANDS
    assert set(cli.commands["subscriptions"].commands) == {  # type: ignore[attr-defined]
        "cancel",
        "create",
        "list",
        "pause",
        "resume",
        "set-binding",
        "show",
        "update",
    }
    assert set(cli.commands["invoices"].commands) == {  # type: ignore[attr-defined]
        "list",
        "show",
        "void",
        "write-off",
    }
    assert set(cli.commands["refunds"].commands) == {"settle", "retry"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", ["billing", "billing.entrypoints.cli.main"])
def test_python_dash_m_runs_the_cli(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: billing ")
    assert "subscriptions" in result.stdout


def test_db_upgrade_says_where_the_database_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path / 'billing.db'}")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output == "database is at revision head\n"


def test_a_usage_mistake_is_one_clear_error() -> None:
    result = CliRunner().invoke(cli, ["retry", "1", "--all", "--reason", "x"])
    assert result.exit_code == 2
    assert "give a SUBSCRIPTION_ID or --all (not both)" in result.output


def test_refunds_settle_and_retry_answer_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path / 'billing.db'}")
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    settled = CliRunner().invoke(cli, ["refunds", "settle"])
    assert settled.exit_code == 0, settled.output
    assert settled.output == "no refund or reversal has an unknown outcome\n"
    missing = CliRunner().invoke(cli, ["refunds", "retry", "7", "--reason", "timed out"])
    assert missing.exit_code == 1  # main() turns it into one "error: ..." line
    assert str(missing.exception) == "refund 7 does not exist"
