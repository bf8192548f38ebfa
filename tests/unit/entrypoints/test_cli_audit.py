"""The CLI records who (``cli:<login>``) and why for every change it makes, create and
set-binding included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.entrypoints.cli.main import cli
from tests.support.cli import cli_database


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    cli_database(tmp_path, monkeypatch)
    return CliRunner()


def _events(runner: CliRunner, sub_id: int) -> list[tuple[str, str, str]]:
    shown = runner.invoke(cli, ["subscriptions", "show", str(sub_id), "--json"])
    assert shown.exit_code == 0, shown.output
    return [(e["kind"], e["actor"], e["reason"]) for e in json.loads(shown.stdout)["events"]]


def test_create_and_set_binding_record_the_login_and_the_reason(runner: CliRunner) -> None:
    created = runner.invoke(
        cli,
        [
            *("subscriptions", "create", "--customer-id", "c1", "--binding-id", "b-1"),
            *("--amount", "100", "--schedule", "0 3 1 * *", "--reason", "signed up by phone"),
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    sub_id = json.loads(created.stdout)["id"]
    changed = runner.invoke(
        cli,
        [
            "subscriptions",
            "set-binding",
            str(sub_id),
            "--binding-id",
            "b-2",
            "--reason",
            "new card",
        ],
    )
    assert changed.exit_code == 0, changed.output
    events = _events(runner, sub_id)
    [created_event] = [e for e in events if e[0] == "subscription_created"]
    assert created_event[1] == "cli:anna"
    assert created_event[2].startswith("signed up by phone (")
    assert ("binding_changed", "cli:anna") in {(k, a) for k, a, _ in events}
    assert ("operator_reason", "cli:anna", "set binding: new card") in events


def test_without_a_reason_create_says_it_came_from_the_cli(runner: CliRunner) -> None:
    created = runner.invoke(
        cli,
        [
            *("subscriptions", "create", "--customer-id", "c1", "--binding-id", "b-1"),
            *("--amount", "100", "--schedule", "0 3 1 * *", "--json"),
        ],
    )
    assert created.exit_code == 0, created.output
    [event] = [e for e in _events(runner, json.loads(created.stdout)["id"]) if e[1] != "system"]
    assert event[:2] == ("subscription_created", "cli:anna")
    assert event[2].startswith("created from the CLI (")
