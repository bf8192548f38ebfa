"""The shipped deployment files: alert rules that promtool accepts and whose unit tests
pass, alerts and dashboard that only use metrics the code exports, a compose env file the
settings accept as is, and an image that does not run as root."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from billing.bootstrap import build_app
from billing.queue.metrics import QueueGauges
from billing.services.read.gauges import DatabaseGauges
from billing.settings import Settings, load_settings, unknown_variable_warnings
from tests.support.fakes import FakeGateway

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "config" / "prometheus"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/test.sh does)"
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def test_promtool_accepts_the_rules_and_config_and_the_alerts_fire_on_their_stories() -> None:
    for args in (
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts_test.yml"),
    ):
        result = _promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def _exported_names(tmp_path: Path) -> set[str]:
    app = build_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'billing.db'}"), gateway=FakeGateway()
    )
    app.db.upgrade()
    try:
        names = {family.name for family in REGISTRY.collect()}
        for collector in (DatabaseGauges(app.db), QueueGauges(app.broker, "billing")):
            names |= {family.name for family in collector.collect()}
    finally:
        app.close()
    text = generate_latest(REGISTRY).decode()
    names |= {family.name for family in text_string_to_metric_families(text)}
    return names


def _used_names(text: str) -> set[str]:
    used = set()
    for name in re.findall(r"\bbilling_[a-z_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        used.add(name)
    return used


@pytest.mark.parametrize(
    "path",
    [PROMETHEUS / "alerts.yml", ROOT / "config" / "grafana" / "billing.json"],
    ids=["alerts", "dashboard"],
)
def test_alerts_and_dashboard_use_only_exported_metrics(tmp_path: Path, path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".json":
        assert json.loads(text)["panels"]
    used = _used_names(text)
    assert {"billing_charging_paused", "billing_attempts_needing_operator"} <= used
    assert used <= _exported_names(tmp_path), used - _exported_names(tmp_path)


def test_the_compose_env_file_is_accepted_by_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = dotenv_values(ROOT / "config" / "compose.example.env")
    assert unknown_variable_warnings(values) == []
    monkeypatch.chdir(tmp_path)
    for name, value in values.items():
        if name.startswith("BILLING_") and value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("BILLING_DUNNING_POLICY", str(ROOT / "config" / "dunning.toml"))
    settings = load_settings()
    assert settings.log_format == "json"
    assert settings.redis_url == "redis://redis:6379/0"


def test_the_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
