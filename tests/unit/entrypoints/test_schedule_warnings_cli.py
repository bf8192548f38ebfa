"""The CLI prints the schedule warning at create and update, and refuses a schedule that
never fires with one clear line (no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from billing.entrypoints.cli.main import cli
from billing.errors import ValidationError
from tests.support.cli import cli_database

WARNING = (
    "warning: '0 3 31 * *' skips months with fewer than 31 days; "
    "use 'L' for the last day of the month"
)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    cli_database(tmp_path, monkeypatch, user=None)
    return CliRunner()


def _create(runner: CliRunner, schedule: str) -> Result:
    return runner.invoke(
        cli,
        [
            *("subscriptions", "create", "--customer-id", "c1", "--binding-id", "b-1"),
            *("--amount", "100", "--schedule", schedule, "--timezone", "UTC", "--json"),
        ],
    )


def test_create_and_update_print_the_day_31_warning(runner: CliRunner) -> None:
    created = _create(runner, "0 3 31 * *")
    assert created.exit_code == 0, created.output
    assert WARNING in created.stderr
    sub_id = json.loads(created.stdout)["id"]
    updated = runner.invoke(
        cli,
        ["subscriptions", "update", str(sub_id), "--schedule", "0 3 L * *", "--reason", "eom"],
    )
    assert updated.exit_code == 0, updated.output
    assert "warning" not in updated.stderr
    again = runner.invoke(
        cli,
        ["subscriptions", "update", str(sub_id), "--schedule", "0 3 31 * *", "--reason", "x"],
    )
    assert again.exit_code == 0, again.output
    assert WARNING in again.stderr


def test_a_schedule_that_never_fires_is_one_clear_error(runner: CliRunner) -> None:
    """A ValidationError, which the CLI prints as one line (exit code 1)."""
    result = _create(runner, "0 3 30 2 *")
    assert result.exit_code != 0
    assert isinstance(result.exception, ValidationError)
    assert "does not fire at least once every 366 days" in str(result.exception)
