"""Every configuration mistake ends with one ``error:`` line and a non-zero exit: a bad
policy file under ``billing worker``, Redis down under ``billing worker`` and
``billing scheduler --once`` (the password in the URL never shown)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOWN = "redis://:hunter2-secret@127.0.0.1:1/0"


def _billing(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    clean["BILLING_DATABASE_URL"] = f"sqlite:///{tmp_path / 'billing.db'}"
    return subprocess.run(
        [sys.executable, "-m", "billing.entrypoints.cli.main", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_bad_policy_file_under_worker(tmp_path: Path) -> None:
    policy = tmp_path / "dunning.toml"
    policy.write_text("retries = [\n")
    line = _one_error_line(
        _billing(
            tmp_path,
            "worker",
            BILLING_REDIS_URL="redis://127.0.0.1:6379/6",
            BILLING_DUNNING_POLICY=str(policy),
        )
    )
    assert "dunning policy" in line and "invalid TOML" in line


@pytest.mark.parametrize("command", [["scheduler", "--once"]])
def test_redis_down(tmp_path: Path, command: list[str]) -> None:
    # (a worker is not refused: Redis down is an outage it waits out; the chaos run restarts
    # workers while Redis is down and they must come back)
    assert _billing(tmp_path, "db", "upgrade").returncode == 0
    line = _one_error_line(_billing(tmp_path, *command, BILLING_REDIS_URL=DOWN))
    assert "127.0.0.1:1/0" in line and "does not answer" in line
    assert "hunter2" not in line
