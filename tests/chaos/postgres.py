"""The chaos run's own PostgreSQL: a throw-away cluster it can stop and start at will.

The machine's shared PostgreSQL (127.0.0.1:5432) serves other people and other tests and
is never restarted; the run makes a cluster of its own instead (``initdb`` in a temporary
directory, trust authentication, ``fsync=off``), serves it on a free loopback port with its
socket in that directory, and restarts it in the middle of the run. PostgreSQL refuses to
run as root: run as root, the cluster belongs to (and runs as) an unprivileged user
(``postgres``, else ``nobody``). Test machinery, not product code.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from tests.chaos.processes import ChaosError, Process, free_port, wait_until

#: Unprivileged users the cluster may run as when the run itself runs as root.
CLUSTER_USERS = ("postgres", "nobody")
DATABASE = "billing_chaos"


def _bin_dir() -> Path:
    """The newest installed server's bin directory (``/usr/lib/postgresql/<v>/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name.split(".")[0]),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ChaosError("no PostgreSQL server found (initdb not in /usr/lib/postgresql/*/bin)")
    return Path(initdb).parent


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """(argv prefix, user): how to run the server's programs as a user it accepts."""
    if os.geteuid() != 0:
        return [], None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ChaosError("running as root needs setpriv to start PostgreSQL as another user")
    for name in CLUSTER_USERS:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        prefix = [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
        ]
        return prefix, user
    raise ChaosError(f"running as root, and none of the users {CLUSTER_USERS} exists")


class PrivatePostgres:
    """One private cluster: :meth:`init` once, then :meth:`start`/:meth:`stop` as often as
    the run likes; :meth:`remove` deletes its files. :attr:`url` is the chaos database."""

    def __init__(self, log_dir: Path) -> None:
        self.bin = _bin_dir()
        self.prefix, self.user = _run_as()
        # Its own directory (not the run's, which may be private to this user): the
        # cluster's user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="billing-chaos-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.socket_dir.mkdir()
        if self.user is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self.log_path = log_dir / "postgres.log"
        self.process: Process | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=2"

    def init(self) -> None:
        """``initdb`` (superuser ``postgres``, trust on loopback), then the chaos database."""
        argv = [
            *self.prefix,
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]
        done = subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise ChaosError(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def start(self, env: Mapping[str, str]) -> None:
        argv = [
            *self.prefix,
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ]
        self.process = Process("postgres", argv, env, self.log_path)
        self.process.start()
        wait_until(self.ready, 60, "the private PostgreSQL")

    def ready(self) -> bool:
        if self.process is not None and not self.process.alive:
            tail = self.log_path.read_text(errors="replace").splitlines()[-10:]
            raise ChaosError("the private PostgreSQL exited:\n" + "\n".join(tail))
        try:
            with psycopg.connect(self._conninfo("postgres")) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self) -> None:
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self, mode: str = "fast", grace: float = 30.0) -> None:
        """Shut down like ``pg_ctl stop -m <mode>``: ``fast`` (SIGINT: sessions are cut,
        a clean checkpoint) or ``immediate`` (SIGQUIT: as after a crash, recovery at start)."""
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        if self.process is not None:
            self.process.terminate(sig, grace)
            self.process = None

    def restart(self, env: Mapping[str, str], *, mode: str, down: float) -> float:
        """Stop, stay down ``down`` seconds, start again; the seconds it was unreachable."""
        went_down = time.monotonic()
        self.stop(mode)
        time.sleep(down)
        self.start(env)
        self.restarts += 1
        return time.monotonic() - went_down

    def remove(self) -> None:
        self.stop("immediate", grace=10.0)
        shutil.rmtree(self.root, ignore_errors=True)
