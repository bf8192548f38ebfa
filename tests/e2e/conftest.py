"""The real thing: the CLI, the sandbox gateway, the scheduler and Dramatiq workers as
subprocesses, against real PostgreSQL and Redis, talking HTTP over loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BILLING = [sys.executable, "-m", "billing"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


class Stack:
    def __init__(self, env: dict[str, str], sandbox_url: str, logs: Path) -> None:
        self.env = env
        self.sandbox_url = sandbox_url
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: dict[str, IO[bytes]] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_files[name] = log
        self.processes[name] = subprocess.Popen(
            [*BILLING, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def serve_admin(self, env: dict[str, str]) -> str:
        """``billing admin serve`` on a free port, once it answers /api/health: its URL."""
        port = free_port()
        self.start("admin", "admin", "serve", "--port", str(port), env=env)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the admin app to answer")
        return base

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        log = self._log_files.pop(name, None)
        try:
            if process is not None:
                _terminate(process, sig)
        finally:
            if log is not None:
                log.close()

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*BILLING, *args],
            env={**self.env, **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"billing {' '.join(args)} failed: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def subscribe(self, binding: str, customer: str = "cust-1", amount: int = 49900) -> int:
        created = self.json(
            "subscriptions",
            "create",
            "--customer-id",
            customer,
            "--binding-id",
            binding,
            "--amount",
            str(amount),
            "--schedule",
            "0 3 1 * *",
            "--timezone",
            "Europe/Moscow",
            "--start-at",
            datetime.now(UTC).isoformat(),
        )
        return int(created["id"])

    def show(self, sub_id: int) -> dict[str, Any]:
        return dict(self.json("subscriptions", "show", str(sub_id)))

    def ledger(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        response = httpx.get(f"{self.sandbox_url}/sandbox/ledger", params=params, timeout=5)
        return list(response.json()["orders"])

    def dump_logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs.iterdir()
        )


@pytest.fixture
def stack(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    port = free_port()
    sandbox_root = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
        "BILLING_DATABASE_URL": pg_url,
        "BILLING_REDIS_URL": redis_url,
        "BILLING_GATEWAY_URL": f"{sandbox_root}/payment/rest",
        "BILLING_GATEWAY_USERNAME": "sandbox",
        "BILLING_GATEWAY_PASSWORD": "sandbox",
        "BILLING_GATEWAY_READ_TIMEOUT": "1",
        "BILLING_GATEWAY_CONNECT_TIMEOUT": "1",
        "BILLING_GATEWAY_WRITE_TIMEOUT": "0.5",
        "BILLING_GATEWAY_POOL_TIMEOUT": "0.5",
        "BILLING_DUNNING_POLICY": str(ROOT / "config" / "dunning-fast.toml"),
        "BILLING_SCHEDULER_INTERVAL": "0.3",
        "BILLING_STALE_SENDING_AFTER": "4",
        "BILLING_REQUEUE_AFTER": "10",
        "BILLING_WORKER_PROCESSES": "1",
        "BILLING_WORKER_THREADS": "4",
        "PYTHONUNBUFFERED": "1",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = Stack(env, sandbox_root, logs)
    stack.start("sandbox", "sandbox", "--port", str(port), "--timeout-delay", "2")
    wait_until(lambda: _healthy(sandbox_root), 20, "the sandbox to answer")
    stack.cli("db", "upgrade")
    try:
        yield stack
    except BaseException:
        print(stack.dump_logs())
        raise
    finally:
        for name in list(stack.processes):
            stack.stop(name)


def _terminate(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        process.wait(timeout=5)
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _healthy(root: str) -> bool:
    try:
        return httpx.get(f"{root}/sandbox/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
