"""``billing audit`` checks the money invariants anyone can run, and ``billing resolve``
refuses clearly what it cannot resolve."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.entrypoints.cli.main import cli
from billing.errors import NotFoundError
from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice
from tests.support.cli import cli_database

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return cli_database(tmp_path, monkeypatch)


def _subscribe(runner: CliRunner) -> int:
    created = runner.invoke(
        cli,
        [
            *("subscriptions", "create", "--customer-id", "c1", "--binding-id", "b-1"),
            *("--amount", "100", "--schedule", "0 3 1 * *", "--json"),
        ],
    )
    assert created.exit_code == 0, created.output
    return int(json.loads(created.stdout)["id"])


def _invoice(db_url: str, sub_id: int, month: int = 12, **values: object) -> int:
    db = Database(db_url)
    try:
        with db.transaction() as s:
            invoice = Invoice(
                subscription_id=sub_id,
                period_start=NOW.replace(month=month),
                local_period=f"2026-{month:02}-01",
                amount=100,
                currency="643",
                attempt_count=0,
                created_at=NOW,
                updated_at=NOW,
                **values,
            )
            s.add(invoice)
            s.flush()
            return int(invoice.id)
    finally:
        db.dispose()


def _paid_attempt(db_url: str, sub_id: int, invoice_id: int, number: int) -> int:
    db = Database(db_url)
    try:
        with db.transaction() as s:
            attempt = ChargeAttempt(
                invoice_id=invoice_id,
                subscription_id=sub_id,
                attempt_number=number,
                order_number=f"{invoice_id}-{number}-x",
                trigger="scheduled",
                state="paid",
                category="paid",
                binding_version=1,
                amount=100,
                currency="643",
                status_checks=0,
                needs_refund=False,
                created_at=NOW,
                updated_at=NOW,
            )
            s.add(attempt)
            s.flush()
            return int(attempt.id)
    finally:
        db.dispose()


def test_audit_passes_on_a_healthy_database(db_url: str) -> None:
    runner = CliRunner()
    sub_id = _subscribe(runner)
    _invoice(db_url, sub_id, status="open", next_attempt_at=NOW)  # a planned attempt
    result = runner.invoke(cli, ["audit"])
    assert result.exit_code == 0, result.output
    assert "ok: every invariant holds" in result.output


def test_an_open_invoice_with_no_next_step_fails_the_audit_and_is_named(db_url: str) -> None:
    runner = CliRunner()
    sub_id = _subscribe(runner)
    stuck = _invoice(db_url, sub_id, status="open", next_attempt_at=None)
    result = runner.invoke(cli, ["audit"])
    assert result.exit_code == 1, result.output
    assert f"open invoice {stuck} " in result.output
    as_json = runner.invoke(cli, ["audit", "--json"])
    assert as_json.exit_code == 1
    body = json.loads(as_json.stdout)
    assert body["ok"] is False
    assert [(p["check"], p["invoice_id"]) for p in body["problems"]] == [("next_step", stuck)]


def test_a_newer_invoice_waiting_for_an_older_one_has_a_next_step(db_url: str) -> None:
    # One collection at a time, oldest first: November's retry is planned, December waits.
    runner = CliRunner()
    sub_id = _subscribe(runner)
    older = _invoice(db_url, sub_id, month=11, status="open", next_attempt_at=NOW)
    _invoice(db_url, sub_id, month=12, status="open", next_attempt_at=None)
    result = runner.invoke(cli, ["audit"])
    assert result.exit_code == 0, result.output
    # ... but when the older one has no next step itself, it is named (and only it).
    db = Database(db_url)
    with db.transaction() as s:
        s.get_one(Invoice, older).next_attempt_at = None
    db.dispose()
    body = json.loads(runner.invoke(cli, ["audit", "--json"]).stdout)
    assert [(p["check"], p["invoice_id"]) for p in body["problems"]] == [("next_step", older)]


def test_two_unflagged_payments_for_one_invoice_fail_the_audit(db_url: str) -> None:
    runner = CliRunner()
    sub_id = _subscribe(runner)
    invoice_id = _invoice(db_url, sub_id, status="paid", next_attempt_at=None)
    first = _paid_attempt(db_url, sub_id, invoice_id, 1)
    second = _paid_attempt(db_url, sub_id, invoice_id, 2)
    lonely = _invoice(db_url, sub_id, 11, status="open", next_attempt_at=NOW)
    _paid_attempt(db_url, sub_id, lonely, 1)
    result = runner.invoke(cli, ["audit", "--json"])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert {"check": "double_paid", "invoice_id": invoice_id} | {
        "attempt_ids": [first, second]
    } == {k: problems[0][k] for k in ("check", "invoice_id", "attempt_ids")}
    assert ("paid_consistency", lonely) in {(p["check"], p["invoice_id"]) for p in problems}


def test_resolve_of_an_unknown_attempt_is_one_clear_error(db_url: str) -> None:
    result = CliRunner().invoke(cli, ["resolve", "999", "--reason", "checked"])
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFoundError)
    assert "attempt 999 does not exist" in str(result.exception)
