"""The chaos run's processes: start, stop, kill and wait for the billing CLI, Redis and
the sandbox as subprocesses, each in its own session. Test machinery, not product code."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
BILLING = [sys.executable, "-m", "billing"]
#: What a Dramatiq worker process logs once it consumes messages.
WORKER_READY = "Worker process is ready for action"


class ChaosError(Exception):
    """The run could not be carried out (a process would not start, a bad setting)."""


# ---------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")


class Process:
    """One child process in its own session, logging to ``<workdir>/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path):
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0
        self._log_start = 0
        self._ready_at: float | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.returncode

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        if self._popen is not None:
            raise ChaosError(f"{self.name} is already started")
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== {_stamp()} start {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.started_at = time.monotonic()
        self._log_start = self._log.tell()
        self._ready_at = None
        self._popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def reset(self) -> None:
        """Forget a process that exited by itself (reaped, log closed)."""
        self._signal_and_reap(signal.SIGKILL, 1.0)

    def ready_for(self, marker: str) -> float:
        """Seconds since ``marker`` appeared in this run's log (0.0 until it has)."""
        if self._popen is None:
            return 0.0
        if self._ready_at is None:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                if marker.encode() not in log.read():
                    return 0.0
            self._ready_at = time.monotonic()
        return time.monotonic() - self._ready_at

    def pause(self) -> None:
        """SIGSTOP the whole process group: it stops mid-instruction, sockets stay open."""
        if self._popen is not None:
            _signal_group(self._popen, signal.SIGSTOP)

    def resume(self) -> None:
        if self._popen is not None:
            _signal_group(self._popen, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole process group at once: no clean-up, no goodbye."""
        self._signal_and_reap(signal.SIGKILL, 10.0)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; safe to call twice."""
        self._signal_and_reap(signal.SIGTERM, grace)

    def terminate(self, sig: signal.Signals, grace: float) -> None:
        """``sig`` to the process group, then SIGKILL after ``grace`` seconds."""
        self._signal_and_reap(sig, grace)

    def _signal_and_reap(self, sig: signal.Signals, grace: float) -> None:
        popen, self._popen = self._popen, None
        try:
            if popen is not None:
                _signal_group(popen, sig)
                _signal_group(popen, signal.SIGCONT)  # a paused process must see SIGTERM
                try:
                    popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _signal_group(popen, signal.SIGKILL)
                    popen.wait(timeout=10)
        finally:
            if self._log is not None:
                self._log.write(f"=== {_stamp()} {sig.name}\n".encode())
                self._log.close()
                self._log = None


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if popen.returncode is not None:
        return  # reaped: its pid (our group id) may belong to someone else by now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def _count_log_errors(workdir: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in sorted(workdir.glob("*.log")):
        name = path.stem.split("-")[0]  # worker-1, worker-2 -> worker
        with path.open("rb") as log:
            counts[name] += sum(1 for line in log if b" ERROR " in line or b" CRITICAL " in line)
    return counts


def _stamp() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]


def _redis_up(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
