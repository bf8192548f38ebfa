"""What the CLI prints: data shown literally (never markup, never terminal control
sequences), tables not cut when piped, pages that say there is more, ``status`` for people
and for cron (``--check``), JSON errors under ``--json``, and bad numbers refused with one
clear line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from billing.domain.circuit_breaker import Circuit, CircuitState
from billing.entrypoints.cli import output
from billing.entrypoints.cli.main import cli
from billing.storage.circuit_row import save_circuit
from billing.storage.database import Database
from tests.support.cli import cli_database, run_main

ESCAPE = "cust-\x1b]0;pwned\x07-\x1b[31mred"
LONG = "customer-" + "x" * 90


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return cli_database(tmp_path, monkeypatch)


def _create(customer: str, amount: str = "49900") -> CliRunner:
    runner = CliRunner()
    created = runner.invoke(
        cli,
        [
            "subscriptions", "create", "--customer-id", customer, "--binding-id", "approve-1",
            "--amount", amount, "--schedule", "0 3 1 * *", "--json",
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    return runner


@pytest.mark.parametrize("customer", ["[/x]", "[bold]boss[/bold]", ESCAPE])
def test_customer_ids_are_shown_literally(db_url: str, customer: str) -> None:
    runner = _create(customer)
    listed = runner.invoke(cli, ["subscriptions", "list"])
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.output and "\x07" not in listed.output
    assert output.safe(customer) in listed.output
    shown = runner.invoke(cli, ["subscriptions", "show", "1"])
    assert shown.exit_code == 0 and output.safe(customer) in shown.output


def test_on_a_terminal_markup_and_escapes_stay_literal_and_cells_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    fake = Console(file=screen, force_terminal=True, width=40, color_system=None)
    monkeypatch.setattr(output, "console", fake)
    output.table(["customer"], [["[/x]"], [ESCAPE], [LONG]])
    text = screen.getvalue()
    assert "[/x]" in text and "\\x1b]0;pwned\\x07" in text and "\x07" not in text
    assert "…" not in text  # folded over lines, not cut
    assert "".join(part.strip("│ \n") for part in text.splitlines()).count("x" * 30) >= 1


def test_piped_tables_are_plain_columns_that_keep_every_character(db_url: str) -> None:
    runner = _create(LONG)
    listed = runner.invoke(cli, ["subscriptions", "list"])
    assert listed.exit_code == 0
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:3] == ["id", "customer", "binding"]
    assert LONG in row and row.count("…") == 1  # only the masked binding
    assert "next charge (UTC)" in header


def test_lists_are_paginated_and_say_when_there_is_more(db_url: str) -> None:
    for n in range(3):
        _create(f"cust-{n}")
    runner = CliRunner()
    first = runner.invoke(cli, ["subscriptions", "list", "--limit", "2", "--json"])
    assert [s["customer_id"] for s in json.loads(first.stdout)] == ["cust-0", "cust-1"]
    assert "--offset 2 --limit 2" in first.stderr
    rest = runner.invoke(cli, ["subscriptions", "list", "--limit", "2", "--offset", "2"])
    assert "cust-2" in rest.stdout and "cust-0" not in rest.stdout
    assert "more" not in rest.stderr
    invoices = runner.invoke(cli, ["invoices", "list", "--limit", "1", "--offset", "0"])
    assert invoices.exit_code == 0 and "more" not in invoices.stderr  # no invoices yet


def test_status_is_a_human_summary_and_check_exits_non_zero_when_paused(
    db_url: str,
) -> None:
    runner = CliRunner()
    fine = runner.invoke(cli, ["status", "--check"])
    assert fine.exit_code == 0, fine.output
    assert "charging: running" in fine.stdout
    assert "attempts waiting for an operator: 0" in fine.stdout
    db = Database(db_url.replace("sqlite:///", "sqlite:///"))
    probe = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    with db.transaction() as session:
        save_circuit(
            session,
            Circuit(state=CircuitState.OPEN, reason="access denied", retry_at=probe),
            probe,
        )
    db.dispose()
    paused = runner.invoke(cli, ["status", "--check"])
    assert paused.exit_code == 1
    assert "charging: PAUSED (access denied)" in paused.stdout
    assert "next probe of the gateway: 2030-01-02T03:04:00+00:00" in paused.stdout
    as_json = runner.invoke(cli, ["status", "--json", "--check"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["charging"]["state"] == "paused"
    assert runner.invoke(cli, ["status"]).exit_code == 0  # without --check: only reports


def test_under_json_errors_are_json_too(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["subscriptions", "show", "42", "--json"], capsys)
    assert code == 1
    assert json.loads(out)["error"] == "not_found"
    code, out, _ = run_main(["subscriptions", "show", "nope", "--json"], capsys)
    assert code == 2
    assert json.loads(out)["error"] == "usage"
    code, out, err = run_main(["subscriptions", "show", "42"], capsys)
    assert (code, out) == (1, "") and err.startswith("error: ")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["subscriptions", "show", str(2**64)], "18446744073709551616"),
        (["invoices", "list", "--offset", str(2**64)], "--offset"),
        (["refund", str(2**63), "--reason", "r"], "ATTEMPT_ID"),
    ],
)
def test_ids_beyond_64_bits_are_a_usage_error(
    db_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code, _out, err = run_main(argv, capsys)
    assert code == 2
    assert "Traceback" not in err and says in err


@pytest.mark.parametrize(
    ("amount", "says"),
    [
        ("1234567890123", "at most 12 digits"),
        ("٤٩٩٠٠", "ASCII digits"),
        ("\uff14\uff19\uff19\uff10\uff10", "ASCII digits"),  # fullwidth 49900
    ],
)
def test_amounts_are_ascii_digits_and_at_most_12_of_them(
    db_url: str, capsys: pytest.CaptureFixture[str], amount: str, says: str
) -> None:
    argv = [
        "subscriptions", "create", "--customer-id", "c", "--binding-id", "approve-1",
        "--amount", amount, "--schedule", "0 3 1 * *",
    ]  # fmt: skip
    code, _out, err = run_main(argv, capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err
    assert CliRunner().invoke(cli, ["subscriptions", "list", "--json"]).stdout.strip() == "[]"
