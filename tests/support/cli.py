"""Driving ``billing`` in-process, as a shell user would: an upgraded SQLite database the
commands find through ``BILLING_DATABASE_URL`` (no Redis), and ``main()`` with its exit code
and its two streams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.entrypoints.cli.main import cli, main
from tests.support.world import sqlite_url


def cli_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, user: str | None = "anna"
) -> str:
    """An upgraded database in ``tmp_path`` for every ``billing`` command of the test;
    ``user`` is ``$USER`` (the actor the CLI records), None leaves it alone."""
    url = sqlite_url(tmp_path)
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    monkeypatch.delenv("BILLING_REDIS_URL", raising=False)
    if user is not None:
        monkeypatch.setenv("USER", user)
    upgraded = CliRunner().invoke(cli, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    return url


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``billing ARGV`` through ``main()`` (one-line errors, exit codes): code, out, err."""
    old = sys.argv
    sys.argv = ["billing", *argv]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err
