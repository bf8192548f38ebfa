"""Heartbeats: ``billing status`` shows the scheduler's last pass and the live workers;
``billing health`` (the compose healthcheck) says whether this machine's process is alive."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.bootstrap import build_app
from billing.entrypoints.cli.main import cli
from billing.settings import Settings
from billing.storage.heartbeats import beat
from tests.support.cli import cli_database
from tests.support.fakes import FakeGateway
from workers.heartbeat import Heartbeat
from workers.scheduler import run_once


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return cli_database(tmp_path, monkeypatch, user=None)


def _status() -> dict[str, object]:
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    processes: dict[str, object] = json.loads(result.output)["processes"]
    return processes


def test_status_shows_the_last_pass_and_live_workers(db_url: str) -> None:
    assert _status() == {"scheduler": None, "workers": {"live": 0, "processes": []}}
    app = build_app(Settings(database_url=db_url), gateway=FakeGateway())
    try:
        app.db.upgrade()
        scheduler = Heartbeat(app.db, "scheduler", every=60)
        run_once(app, scheduler)
        scheduler.stop(forget_row=False)  # stopped cleanly: its last pass stays visible
        now = datetime.now(UTC)
        beat(app.db, "worker", now, started_at=now, host="box-1", pid=11)
        beat(app.db, "worker", now - timedelta(minutes=5), started_at=now, host="box-2", pid=12)
    finally:
        app.close()
    processes = _status()
    sched = processes["scheduler"]
    assert isinstance(sched, dict)
    assert sched["live"] is True
    assert sched["last_pass_at"] is not None
    assert "invoices_opened" in json.dumps(sched["last_pass"])
    assert processes["workers"] == {"live": 1, "processes": [{"host": "box-1", "pid": 11}]}


def test_health_exits_non_zero_without_a_recent_heartbeat_here(db_url: str) -> None:
    result = CliRunner().invoke(cli, ["health", "worker"])
    assert result.exit_code == 1
    assert "unhealthy: no worker heartbeat on" in result.output
    app = build_app(Settings(database_url=db_url), gateway=FakeGateway())
    try:
        worker = Heartbeat(app.db, "worker", every=60)
        assert worker.beat()
        assert CliRunner().invoke(cli, ["health", "worker"]).exit_code == 0
        assert CliRunner().invoke(cli, ["health", "scheduler"]).exit_code == 1
        worker.stop()  # a clean shutdown removes the row
    finally:
        app.close()
    assert CliRunner().invoke(cli, ["health", "worker"]).exit_code == 1
