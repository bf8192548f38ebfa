"""The chaos run: "never charge twice, never lose a charge", checked against real processes.

:func:`run_chaos` starts a private PostgreSQL cluster and a private ``redis-server``, the
sandbox gateway (injecting time-outs after charging, HTTP 500 before charging and slow
answers), ``billing scheduler`` and several ``billing worker`` processes, each worker with
its own clock offset (drift between hosts), creates N monthly, weekly and daily
subscriptions falling due during the run, then:

* the chaos phase: workers are killed with SIGKILL (with their Dramatiq children) at
  random and restarted after a short random delay; PostgreSQL is restarted
  (``immediate`` shutdown, down a few seconds) while everything runs; Redis is killed and
  started again on the same port, empty; time jumps days ahead a few times (every
  scheduler and worker killed at once and started again later on the clock, see
  :mod:`tests.chaos.plan`), so that several periods of each schedule fall due;
* the quiet phase: nothing is killed any more; the run waits until no attempt is in
  flight and nothing is due;
* the audit (:func:`audit`), from the sandbox's own ledger and the database:

  1. at most one DEPOSITED order per invoice, unless the extra one is flagged
     ``needs_refund`` (then it is counted and reported);
  2. every DEPOSITED order belongs to an attempt recorded ``paid`` and every ``paid``
     attempt has a DEPOSITED order;
  3. every invoice is ``paid``, ``open`` with a documented next step (retry scheduled,
     ``suspended``, ``needs_payment_method``) or ``uncollectible`` with its subscription
     canceled, and each ends as its card's behaviour says it must;
  4. no attempt is left ``pending``/``sending``, nor ``unknown`` without a next check,
     nor handed to an operator;

  and ``billing audit`` is run as a subprocess, as an operator would: it must exit 0.

Nothing here touches the machine's shared Redis: every billing process gets
``BILLING_REDIS_URL`` pointing at the run's own ``redis-server`` on a free loopback port.
Every process is started in its own session and stopped in ``finally``; their logs are
kept in the run's directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url

from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription
from tests.chaos.invariants import (
    BILLABLE,
    BINDING_MIX,
    IN_FLIGHT,
    AttemptRow,
    Audit,
    InvoiceRow,
    OrderRow,
    SubscriptionRow,
    audit,
)
from tests.chaos.plan import (
    CHAOS_POLICY,
    FULL_JUMPS,
    FULL_OFFSETS,
    SCHEDULE_MIX,
    TIMEZONE,
    event_order,
    schedule_name,
)
from tests.chaos.postgres import PrivatePostgres
from tests.chaos.processes import (
    BILLING,
    ROOT,
    WORKER_READY,
    ChaosError,
    Process,
    _count_log_errors,
    _http_ok,
    _redis_up,
    free_port,
    wait_until,
)

USAGE = """The chaos run: "never charge twice, never lose a charge".

    .venv/bin/python -m tests.chaos.run --subscriptions 2000 --seconds 90 --seed 7
    (or scripts/chaos.py with the same arguments)

Needs a PostgreSQL server installed (initdb, /usr/lib/postgresql/*/bin) and
``redis-server`` on PATH: the run starts its own cluster and its own Redis on free
loopback ports (never the machine's shared ones). It runs the sandbox with faults, the
scheduler and workers (killed at random, clocks drifted), restarts PostgreSQL and Redis,
jumps days ahead, waits for the system to settle, audits the sandbox ledger against the
database, runs ``billing audit``, prints the counts and exits 1 if an invariant failed (2 if
the run could not be carried out). --external uses a database on --admin-url instead (no
PostgreSQL restart then).
"""

# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ChaosConfig:
    """Every knob of a chaos run. Durations are in seconds."""

    #: None: a private PostgreSQL cluster, restarted during the run; else this database
    #: (then PostgreSQL is not restarted).
    database_url: str | None = None
    subscriptions: int = 150
    #: Length of the chaos phase (worker kills, the Redis restart).
    seconds: float = 30.0
    seed: int = 1
    #: Due times are spread over this many seconds from the start; None = 60 % of
    #: ``seconds``, so that work is in flight while processes die.
    spread: float | None = None
    workers: int = 2
    worker_threads: int = 8
    #: Each worker's clock offset in seconds (cycled over the workers): drift between hosts.
    clock_offsets: tuple[float, ...] = (-15.0, 5.0)
    #: Time jumps during the chaos phase, in days (every scheduler and worker restarted
    #: that much later on the clock).
    time_jumps: tuple[float, ...] = (7.0,)
    postgres_restarts: int = 1
    postgres_down: float = 3.0
    #: ``immediate`` (as after a crash) or ``fast`` (sessions cut, clean shutdown).
    postgres_stop_mode: str = "immediate"
    fault_rate: float = 0.2
    timeout_delay: float = 3.0
    kill_every: tuple[float, float] = (1.0, 4.0)
    restart_after: tuple[float, float] = (0.5, 2.0)
    #: Share of worker faults that are a pause (SIGSTOP, then SIGCONT after
    #: ``pause_seconds``) instead of SIGKILL: a stalled process (VM pause, GC, CPU
    #: starvation) that wakes up with a request still to send. Off by default.
    pause_share: float = 0.0
    #: Only workers that said they are ready at least this long ago are killed or paused
    #: (a worker still booting does no work, so killing it tests little).
    min_uptime: float = 1.0
    pause_seconds: float = 6.0
    redis_restarts: int = 1
    redis_down: float = 3.0
    settle_timeout: float = 180.0
    scheduler_interval: float = 0.5
    requeue_after: float = 5.0
    stale_sending_after: float = 3.0
    connect_timeout: float = 1.0
    read_timeout: float = 1.0
    #: A dunning policy file; None = :data:`CHAOS_POLICY` written into the run directory.
    policy: Path | None = None
    #: Where logs go; None = a new temporary directory (kept: it holds the evidence).
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if self.subscriptions < 1:
            raise ChaosError("subscriptions must be at least 1")
        if self.seconds <= 0 or self.settle_timeout <= 0:
            raise ChaosError("seconds and settle_timeout must be positive")
        if self.workers < 1 or self.worker_threads < 1:
            raise ChaosError("workers and worker_threads must be at least 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ChaosError("fault_rate must be between 0 and 1")
        for name in ("kill_every", "restart_after"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ChaosError(f"{name} must be (low, high) with 0 < low <= high")
        if not 0.0 <= self.pause_share <= 1.0 or self.pause_seconds < 0:
            raise ChaosError("pause_share must be between 0 and 1, pause_seconds >= 0")
        if self.redis_restarts < 0 or self.redis_down < 0:
            raise ChaosError("redis_restarts and redis_down must not be negative")
        if self.postgres_restarts < 0 or self.postgres_down < 0:
            raise ChaosError("postgres_restarts and postgres_down must not be negative")
        if self.postgres_stop_mode not in ("fast", "immediate"):
            raise ChaosError("postgres_stop_mode must be fast or immediate")
        if not self.clock_offsets or any(abs(o) > 3600 for o in self.clock_offsets):
            raise ChaosError("clock_offsets: one or more offsets of at most an hour")
        if any(not 0 < d <= 100 for d in self.time_jumps) or sum(self.time_jumps) > 300:
            raise ChaosError("time_jumps: days in (0, 100], 300 days at most in all")

    @property
    def due_spread(self) -> float:
        return self.seconds * 0.6 if self.spread is None else self.spread


# ---------------------------------------------------------------------------- the result


@dataclass
class ChaosResult:
    """What a run did and what the audit found."""

    config: ChaosConfig
    audit: Audit
    workdir: Path
    workers_killed: int
    workers_paused: int
    worker_restarts: int
    redis_restarts: int
    postgres_restarts: int
    #: Seconds PostgreSQL was unreachable, per restart.
    postgres_down: list[float]
    #: Days the clock was moved ahead in all (time jumps done).
    days_jumped: float
    jumps: int
    #: ``billing audit --json`` as an operator runs it: exit code and its answer.
    billing_audit_exit: int | None
    billing_audit: dict[str, Any]
    invoices_by_schedule: Counter[str]
    duration: float
    #: Seconds from the end of the chaos phase until nothing was in flight or due.
    settle_seconds: float | None
    faults: list[str] = field(default_factory=list)
    #: Processes that exited without being killed by the run.
    unexpected_exits: list[str] = field(default_factory=list)
    #: ERROR/CRITICAL log lines per process log (informational: crashes the chaos causes
    #: on purpose log errors too; read them when the number grows).
    log_errors: Counter[str] = field(default_factory=Counter)

    @property
    def settled(self) -> bool:
        return self.settle_seconds is not None

    @property
    def violations(self) -> list[str]:
        extra = []
        if not self.settled:
            extra.append(
                f"[settle] the system did not settle within {self.config.settle_timeout:.0f}s "
                "after the chaos phase"
            )
        for text, times in Counter(self.unexpected_exits).items():
            extra.append(f"[process] {text}" + (f" ({times} times)" if times > 1 else ""))
        if self.billing_audit_exit != 0:
            extra.append(f"[billing audit] exit code {self.billing_audit_exit}")
            for problem in self.billing_audit.get("problems", [])[:20]:
                extra.append(f"    [{problem['check']}] {problem['message']}")
        return extra + self.audit.violations

    @property
    def ok(self) -> bool:
        return not self.violations

    def rows(self) -> list[tuple[str, str]]:
        a = self.audit
        rows: list[tuple[str, str]] = [
            ("subscriptions", str(a.subscriptions)),
            *((f"  {k}", str(v)) for k, v in sorted(a.subscriptions_by_status.items())),
            ("invoices", str(a.invoices)),
            *((f"  {k}", str(v)) for k, v in sorted(self.invoices_by_schedule.items())),
            ("  paid", str(a.invoices_by_status.get("paid", 0))),
            ("  open (in dunning)", str(a.invoices_by_status.get("open", 0))),
            *((f"    {k}", str(v)) for k, v in sorted(a.open_by_step.items())),
            ("  uncollectible", str(a.invoices_by_status.get("uncollectible", 0))),
            ("ledger orders", str(a.ledger_orders)),
            *((f"  {k}", str(v)) for k, v in sorted(a.ledger_by_state.items())),
            ("attempts", str(a.attempts)),
            *((f"  {k}", str(v)) for k, v in sorted(a.attempts_by_state.items())),
            ("charges (DEPOSITED orders)", str(a.ledger_deposited)),
            ("invoices with two deposits", str(a.double_deposits)),
            ("  of them flagged for refund", str(a.double_charges_flagged)),
            ("attempts needing an operator", str(a.attempts_by_state.get("needs_operator", 0))),
            (
                "billing audit",
                "OK" if self.billing_audit_exit == 0 else f"FAILED ({self.billing_audit_exit})",
            ),
            ("workers killed (SIGKILL)", str(self.workers_killed)),
            ("worker restarts", str(self.worker_restarts)),
            *(
                [("workers paused (SIGSTOP)", str(self.workers_paused))]
                if self.config.pause_share
                else []
            ),
            ("redis restarts", str(self.redis_restarts)),
            ("postgres restarts", str(self.postgres_restarts)),
            *(
                [("  unreachable", ", ".join(f"{d:.1f}s" for d in self.postgres_down))]
                if self.postgres_down
                else []
            ),
            ("worker clock offsets", " ".join(f"{o:+g}s" for o in self.config.clock_offsets)),
            ("time jumps", f"{self.jumps} ({self.days_jumped:g} days)"),
            ("ERROR lines in process logs", str(sum(self.log_errors.values()))),
            *((f"  {k}", str(v)) for k, v in sorted(self.log_errors.items()) if v),
            ("chaos phase", f"{self.config.seconds:.0f}s"),
            (
                "settled after chaos",
                "NO" if self.settle_seconds is None else f"{self.settle_seconds:.1f}s",
            ),
            ("duration", f"{self.duration:.1f}s"),
            ("invariants", "OK" if self.ok else f"FAILED ({len(self.violations)} lines)"),
        ]
        return rows

    def table(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v:>8}" for k, v in rows]
        if not self.ok:
            lines.append("")
            lines.extend(self.violations)
        return "\n".join(lines)

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every process log of the run (for a failed audit)."""
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)


# ---------------------------------------------------------------------------- the run


class ChaosRun:
    """One chaos run; use :func:`run_chaos` unless you need the pieces."""

    def __init__(self, config: ChaosConfig, echo: Callable[[str], None] = print) -> None:
        self.config = config
        self.echo = echo
        self.rng = random.Random(config.seed)
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="billing-chaos-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_port = free_port()
        self.sandbox_port = free_port()
        self.sandbox_root = f"http://127.0.0.1:{self.sandbox_port}"
        self.processes: dict[str, Process] = {}
        self.workers_killed = 0
        self.workers_paused = 0
        self.worker_restarts = 0
        self.redis_restarts = 0
        self.postgres_down: list[float] = []
        #: The clock offset every scheduler and worker shares (days jumped, in seconds).
        self.offset = 0.0
        self.jumps = 0
        self.faults: list[str] = []
        self.unexpected_exits: list[str] = []
        self._started = time.monotonic()
        self.postgres: PrivatePostgres | None = None
        self.database_url = config.database_url or ""
        self.__db: Database | None = None

    @property
    def _db(self) -> Database:
        if self.__db is None:
            self.__db = Database(self.database_url, pool_size=2)
        return self.__db

    def now(self) -> datetime:
        """The scheduler's time (real time plus the days jumped)."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def clock_offset(self, name: str) -> float:
        """The clock offset of one process: the days jumped, plus a worker's own drift."""
        if not name.startswith("worker-"):
            return self.offset
        offsets = self.config.clock_offsets
        return self.offset + offsets[(int(name.split("-")[1]) - 1) % len(offsets)]

    # -- environment ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        c = self.config
        policy = c.policy
        if policy is None:
            policy = self.workdir / "dunning-chaos.toml"
            policy.write_text(CHAOS_POLICY)
        base = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
        return {
            **base,
            "BILLING_DATABASE_URL": self.database_url,
            "BILLING_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "BILLING_GATEWAY_URL": f"{self.sandbox_root}/payment/rest",
            "BILLING_GATEWAY_USERNAME": "sandbox",
            "BILLING_GATEWAY_PASSWORD": "sandbox",
            "BILLING_GATEWAY_CONNECT_TIMEOUT": str(c.connect_timeout),
            "BILLING_GATEWAY_READ_TIMEOUT": str(c.read_timeout),
            "BILLING_GATEWAY_WRITE_TIMEOUT": "0.3",
            "BILLING_GATEWAY_POOL_TIMEOUT": "0.3",
            "BILLING_DUNNING_POLICY": str(policy),
            "BILLING_SCHEDULER_INTERVAL": str(c.scheduler_interval),
            "BILLING_REQUEUE_AFTER": str(c.requeue_after),
            "BILLING_STALE_SENDING_AFTER": str(c.stale_sending_after),
            "BILLING_WORKER_PROCESSES": "1",
            "BILLING_WORKER_THREADS": str(c.worker_threads),
            # No metrics servers: their fixed ports may be taken on a shared machine.
            "BILLING_WORKER_METRICS_PORT": "0",
            "BILLING_SCHEDULER_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }

    def _process(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        process = Process(name, argv, env, self.workdir / f"{name}.log")
        self.processes[name] = process
        return process

    def _start(self, name: str) -> None:
        """Start a scheduler or worker with its current clock offset."""
        process = self.processes[name]
        process.env["BILLING_CLOCK_OFFSET_SECONDS"] = f"{self.clock_offset(name):g}"
        process.start()

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self._started:7.1f}s] {text}"
        self.faults.append(line)
        self.echo(line)
        with (self.workdir / "run.log").open("a") as out:
            out.write(line + "\n")

    # -- the phases -----------------------------------------------------------------------

    def run(self) -> ChaosResult:
        c = self.config
        try:
            self.echo(f"chaos run in {self.workdir}")
            self._start_postgres()
            env = self.env()
            self._start_redis(env)
            self._start_sandbox(env)
            self._migrate(env)
            self._create_subscriptions()
            self._process("scheduler", [*BILLING, "scheduler"], env)
            self._start("scheduler")
            for name in self._worker_names():
                argv = [*BILLING, "worker", "--processes", "1", "--threads", str(c.worker_threads)]
                self._process(name, argv, env)
                self._start(name)
            where = f":{self.postgres.port} (private)" if self.postgres else "external"
            self.note(
                f"started: scheduler, {c.workers} workers (clock offsets "
                f"{', '.join(f'{self.clock_offset(n):+g}s' for n in self._worker_names())}), "
                f"postgres {where}, redis :{self.redis_port}, sandbox :{self.sandbox_port}, "
                f"{c.subscriptions} subscriptions"
            )
            # The chaos phase's clock starts once every worker takes work (a boot takes
            # ~10 s on a busy machine; restarts and jumps are meant to hit work in flight).
            wait_until(self._workers_ready, 120, "the workers to be ready")
            self.note("every worker is ready: the chaos phase starts")
            self._chaos_phase(env, time.monotonic())
            settle = self._quiet_phase()
            for name in ["scheduler", *self._worker_names()]:
                self.processes[name].stop()
            orders = self._ledger()
            attempts, invoices, subscriptions = self._tables()
            by_schedule = self._invoices_by_schedule()
            audit_exit, audit_body = self._billing_audit(env)
        finally:
            self._stop_all()
            if self.__db is not None:
                self.__db.dispose()
            if self.postgres is not None:
                self.postgres.remove()
        return ChaosResult(
            config=c,
            audit=audit(orders, attempts, invoices, subscriptions),
            workdir=self.workdir,
            workers_killed=self.workers_killed,
            workers_paused=self.workers_paused,
            worker_restarts=self.worker_restarts,
            redis_restarts=self.redis_restarts,
            postgres_restarts=len(self.postgres_down),
            postgres_down=self.postgres_down,
            days_jumped=self.offset / 86400,
            jumps=self.jumps,
            billing_audit_exit=audit_exit,
            billing_audit=audit_body,
            invoices_by_schedule=by_schedule,
            duration=time.monotonic() - self._started,
            settle_seconds=settle,
            faults=self.faults,
            unexpected_exits=self.unexpected_exits,
            log_errors=_count_log_errors(self.workdir),
        )

    def _start_postgres(self) -> None:
        if self.config.database_url is not None:
            return
        self.postgres = PrivatePostgres(self.workdir)
        self.postgres.init()
        self.postgres.start(os.environ)
        self.postgres.create_database()
        self.database_url = self.postgres.url

    def _restart_postgres(self) -> None:
        assert self.postgres is not None
        c = self.config
        self.note(f"PostgreSQL stop -m {c.postgres_stop_mode}; down for {c.postgres_down:.1f}s")
        down = self.postgres.restart(os.environ, mode=c.postgres_stop_mode, down=c.postgres_down)
        self.postgres_down.append(down)
        self.note(f"PostgreSQL started again (unreachable {down:.1f}s)")

    def _jump(self, days: float, restarts: dict[str, float], resumes: dict[str, float]) -> None:
        """Every scheduler and worker killed at once, then started ``days`` later on the
        clock: a system-wide outage of that many days."""
        names = ["scheduler", *self._worker_names()]
        for name in names:
            if self.processes[name].alive and name != "scheduler":
                self.workers_killed += 1  # SIGKILLed at work, like any other kill
            self.processes[name].kill()
        restarts.clear()
        resumes.clear()
        self.offset += days * 86400
        self.jumps += 1
        for name in names:
            self._start(name)
        self.note(
            f"time jump: everything killed, started {days:g} days later "
            f"(day {self.offset / 86400:g})"
        )

    def _start_redis(self, env: Mapping[str, str]) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ChaosError("redis-server is not on PATH")
        argv = [
            binary,
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
        ]
        self.processes.pop("redis", None)
        self._process("redis", argv, env).start()
        wait_until(lambda: _redis_up(self.redis_port), 20, "the private redis-server")

    def _start_sandbox(self, env: Mapping[str, str]) -> None:
        c = self.config
        argv = [
            *BILLING,
            "sandbox",
            "--port",
            str(self.sandbox_port),
            "--fault-rate",
            str(c.fault_rate),
            "--timeout-delay",
            str(c.timeout_delay),
            "--seed",
            str(c.seed),
        ]
        self._process("sandbox", argv, env).start()
        wait_until(lambda: _http_ok(f"{self.sandbox_root}/sandbox/health"), 30, "the sandbox")

    def _migrate(self, env: Mapping[str, str]) -> None:
        result = subprocess.run(
            [*BILLING, "db", "upgrade"],
            env=dict(env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ChaosError(f"billing db upgrade failed: {result.stderr.strip()}")

    def _create_subscriptions(self) -> None:
        """Insert the subscriptions in one statement; due times spread over the run."""
        c = self.config
        kinds = [k for k, _ in BINDING_MIX]
        weights = [w for _, w in BINDING_MIX]
        crons = [cron for _, cron, _ in SCHEDULE_MIX]
        cron_weights = [w for _, _, w in SCHEDULE_MIX]
        now = self.now()
        rows: list[dict[str, Any]] = []
        for i in range(c.subscriptions):
            kind = self.rng.choices(kinds, weights)[0]
            cron = self.rng.choices(crons, cron_weights)[0]
            # The first ones are due at once; the rest while the chaos goes on.
            offset = 0.0 if i < c.subscriptions // 5 else self.rng.uniform(0, c.due_spread)
            rows.append(
                {
                    "customer_id": f"chaos-{c.seed}-{i:06d}",
                    "binding_id": f"{kind}-chaos-{c.seed}-{i:06d}",
                    "binding_version": 1,
                    "amount": 100 * self.rng.randint(1, 999),
                    "currency": "643",
                    "description": f"chaos run subscription {i}",
                    "schedule": cron,
                    "timezone": TIMEZONE,
                    "status": "active",
                    "next_charge_at": now + timedelta(seconds=offset),
                    "cancel_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with self._db.transaction() as session:
            session.execute(insert(Subscription), rows)

    def _workers_ready(self) -> bool:
        self._check_alive()
        return all(self.processes[n].ready_for(WORKER_READY) > 0 for n in self._worker_names())

    def _worker_names(self) -> list[str]:
        return [f"worker-{n + 1}" for n in range(self.config.workers)]

    def _chaos_phase(self, env: Mapping[str, str], start: float) -> None:
        c = self.config
        end = start + c.seconds
        pg_restarts = c.postgres_restarts if self.postgres is not None else 0
        order = event_order(len(c.time_jumps), pg_restarts, c.redis_restarts)
        events = [
            (start + c.seconds * (k + 1) / (len(order) + 1), what) for k, what in enumerate(order)
        ]
        jumps = list(c.time_jumps)
        restarts: dict[str, float] = {}
        resumes: dict[str, float] = {}
        next_kill = start + self.rng.uniform(*c.kill_every)
        while (now := time.monotonic()) < end:
            for name, when in list(restarts.items()):
                if now >= when:
                    del restarts[name]
                    self._restart_worker(name)
            for name, when in list(resumes.items()):
                if now >= when:
                    del resumes[name]
                    self.processes[name].resume()
                    self.note(f"SIGCONT {name}")
            if events and now >= events[0][0]:
                what = events.pop(0)[1]
                if what == "redis":
                    self._restart_redis(env)
                elif what == "pg":
                    self._restart_postgres()
                else:
                    self._jump(jumps.pop(0), restarts, resumes)
                continue
            if now >= next_kill:
                next_kill = now + self.rng.uniform(*c.kill_every)
                alive = [
                    n
                    for n in self._worker_names()
                    if self.processes[n].alive
                    and n not in resumes
                    and self.processes[n].ready_for(WORKER_READY) >= c.min_uptime
                ]
                if not alive:
                    next_kill = now + 0.5  # everyone is down, paused or booting
                    continue
                if alive and self.rng.random() < c.pause_share:
                    victim = self.rng.choice(alive)
                    self.processes[victim].pause()
                    self.workers_paused += 1
                    resumes[victim] = time.monotonic() + c.pause_seconds
                    self.note(f"SIGSTOP {victim} for {c.pause_seconds:.1f}s")
                elif alive:
                    victim = self.rng.choice(alive)
                    self.processes[victim].kill()
                    self.workers_killed += 1
                    delay = self.rng.uniform(*c.restart_after)
                    restarts[victim] = time.monotonic() + delay
                    self.note(f"SIGKILL {victim}; restart in {delay:.1f}s")
            self._check_alive()
            time.sleep(0.1)
        for name in restarts:
            self._restart_worker(name)
        for name in resumes:
            self.processes[name].resume()
        self.note("chaos phase over: no more kills")
        self._calm_the_sandbox()

    def _calm_the_sandbox(self) -> None:
        """The storm is over: the sandbox stops injecting faults, and the system must now
        converge (heal, then check). With faults on for ever, a subscription unlucky enough
        to draw one on every new attempt kept the run from settling."""
        if self.config.fault_rate == 0:
            return
        response = httpx.post(
            f"{self.sandbox_root}/sandbox/faults", json={"fault_rate": 0.0}, timeout=30
        )
        response.raise_for_status()
        self.note("sandbox faults off: the settle phase")

    def _restart_worker(self, name: str) -> None:
        self._start(name)
        self.worker_restarts += 1

    def _restart_redis(self, env: Mapping[str, str]) -> None:
        self.processes["redis"].kill()
        self.note(f"SIGKILL redis-server; down for {self.config.redis_down:.1f}s")
        time.sleep(self.config.redis_down)
        self._start_redis(env)
        self.redis_restarts += 1
        self.note("redis-server started again (empty)")

    def _check_alive(self) -> None:
        """A process that died on its own (not killed by us) is a finding, not chaos: it is
        recorded (and fails the run) and, except the sandbox, started again."""
        pg = self.postgres.process if self.postgres is not None else None
        if pg is not None and not pg.alive:
            raise ChaosError("the private PostgreSQL exited on its own; see postgres.log")
        for name, process in list(self.processes.items()):
            if process.pid is None or process.alive:
                continue  # not running because we killed it, or fine
            text = (
                f"{name} exited on its own (exit code {process.returncode}); see {process.log_path}"
            )
            self.unexpected_exits.append(text)
            self.note("UNEXPECTED: " + text)
            if name == "sandbox":
                raise ChaosError(text + " (its ledger is gone: no audit possible)")
            if sum(1 for t in self.unexpected_exits if t.startswith(f"{name} ")) > 5:
                tail = process.log_path.read_text(errors="replace").splitlines()[-15:]
                raise ChaosError(text + ", again and again:\n" + "\n".join(tail))
            process.reset()
            if name == "scheduler" or name.startswith("worker-"):
                self._start(name)
            else:
                process.start()

    def _quiet_phase(self) -> float | None:
        """Wait until nothing is in flight or due (twice in a row); the seconds it took."""
        start = time.monotonic()
        deadline = start + self.config.settle_timeout
        last_report = 0.0
        calm = 0
        while time.monotonic() < deadline:
            self._check_alive()
            progress = self._progress()
            if not any(progress.values()):
                calm += 1
                if calm >= 2:
                    seconds = time.monotonic() - start
                    self.note(f"settled {seconds:.1f}s after the chaos phase")
                    return seconds
            else:
                calm = 0
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                self.note("waiting: " + ", ".join(f"{k}={v}" for k, v in progress.items()))
            time.sleep(1.0)
        self.note(f"NOT settled after {self.config.settle_timeout:.0f}s: {self._progress()}")
        return None

    def _progress(self) -> dict[str, int]:
        now = self.now()
        with self._db.transaction() as session:
            rows = session.execute(
                select(ChargeAttempt.state, func.count())
                .where(ChargeAttempt.state.in_(IN_FLIGHT))
                .group_by(ChargeAttempt.state)
            ).all()
            in_flight = {str(state): int(n) for state, n in rows}
            # Planned attempts the scheduler will make (it charges only active / past_due
            # subscriptions; a plan of a suspended one waits for a card).
            retries = session.scalar(
                select(func.count())
                .select_from(Invoice)
                .join(Subscription, Subscription.id == Invoice.subscription_id)
                .where(
                    Invoice.status == "open",
                    Invoice.next_attempt_at.is_not(None),
                    Subscription.status.in_(("active", "past_due")),
                )
            )
            not_opened = session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.status.in_(BILLABLE), Subscription.next_charge_at <= now)
            )
        return {
            **{state: int(in_flight.get(state, 0)) for state in IN_FLIGHT},
            "retries_planned": int(retries or 0),
            "not_invoiced": int(not_opened or 0),
        }

    # -- evidence -------------------------------------------------------------------------

    def _ledger(self) -> list[OrderRow]:
        response = httpx.get(f"{self.sandbox_root}/sandbox/ledger", timeout=60)
        response.raise_for_status()
        return [
            OrderRow(order_number=str(o["orderNumber"]), state=str(o["state"]))
            for o in response.json()["orders"]
        ]

    def _tables(
        self,
    ) -> tuple[list[AttemptRow], list[InvoiceRow], list[SubscriptionRow]]:
        with self._db.transaction() as session:
            attempts = [
                AttemptRow(
                    id=a.id,
                    invoice_id=a.invoice_id,
                    order_number=a.order_number,
                    state=a.state,
                    needs_refund=a.needs_refund,
                    next_check_at=a.next_check_at,
                )
                for a in session.scalars(select(ChargeAttempt))
            ]
            invoices = [
                InvoiceRow(
                    id=i.id,
                    subscription_id=i.subscription_id,
                    status=i.status,
                    next_attempt_at=i.next_attempt_at,
                )
                for i in session.scalars(select(Invoice))
            ]
            subscriptions = [
                SubscriptionRow(id=s.id, status=s.status, binding_id=s.binding_id)
                for s in session.scalars(select(Subscription))
            ]
        return attempts, invoices, subscriptions

    def _invoices_by_schedule(self) -> Counter[str]:
        with self._db.transaction() as session:
            rows = session.execute(
                select(Subscription.schedule, func.count(Invoice.id))
                .join(Invoice, Invoice.subscription_id == Subscription.id)
                .group_by(Subscription.schedule)
            ).all()
        return Counter({schedule_name(str(cron)): int(n) for cron, n in rows})

    def _billing_audit(self, env: Mapping[str, str]) -> tuple[int | None, dict[str, Any]]:
        """``billing audit --json``, run as an operator would: (exit code, its answer)."""
        result = subprocess.run(
            [*BILLING, "audit", "--json"],
            env={**env, "BILLING_CLOCK_OFFSET_SECONDS": f"{self.offset:g}"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        (self.workdir / "billing-audit.json").write_text(result.stdout + result.stderr)
        try:
            body = json.loads(result.stdout)
        except ValueError:
            body = {"problems": [{"check": "output", "message": result.stderr.strip()[-300:]}]}
        self.note(f"billing audit: exit code {result.returncode}")
        return result.returncode, body if isinstance(body, dict) else {}

    def _stop_all(self) -> None:
        order = ["scheduler", *self._worker_names(), "sandbox", "redis"]
        names = [n for n in order if n in self.processes]
        names += [n for n in self.processes if n not in names]
        for name in names:
            try:
                self.processes[name].stop()
            except Exception as exc:  # keep stopping the others
                self.echo(f"could not stop {name}: {exc}")


@contextlib.contextmanager
def temporary_database(admin_url: str, *, keep: bool = False) -> Iterator[str]:
    """A new empty PostgreSQL database ``billing_chaos_<random>`` made through
    ``admin_url`` (a superuser's connection to any database); its URL is yielded and it
    is dropped afterwards unless ``keep``. The run migrates it (``billing db upgrade``)."""
    name = f"billing_chaos_{secrets.token_hex(6)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sql(f"CREATE DATABASE {name}"))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            if not keep:
                with admin.connect() as conn:
                    conn.execute(sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()


def run_chaos(config: ChaosConfig, echo: Callable[[str], None] = print) -> ChaosResult:
    """Run the whole chaos run: start, break, settle, audit. Every process is stopped."""
    return ChaosRun(config, echo).run()


# ---------------------------------------------------------------------------- command line

DEFAULT_ADMIN_URL = os.environ.get(
    "BILLING_CHAOS_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subscriptions", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=120.0, help="length of the chaos phase")
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--workers", type=int, default=3, help="worker processes (each killable)")
    p.add_argument(
        "--clock-offsets",
        type=_floats,
        default=FULL_OFFSETS,
        help="each worker's clock offset in seconds, cycled (default: -90,0,90)",
    )
    p.add_argument(
        "--jumps",
        type=_floats,
        default=FULL_JUMPS,
        help="time jumps in days, comma-separated; '' for none (default: 1,31)",
    )
    p.add_argument(
        "--stale-sending-after",
        type=float,
        default=10.0,
        help="BILLING_STALE_SENDING_AFTER of the run: the send lease (a status check per "
        "attempt waits in the queue at most once at a time, whatever its length)",
    )
    p.add_argument("--postgres-down", type=float, default=3.0, help="seconds PostgreSQL is down")
    p.add_argument("--postgres-stop-mode", choices=("immediate", "fast"), default="immediate")
    p.add_argument("--threads", type=int, default=8, help="threads per worker")
    p.add_argument("--fault-rate", type=float, default=0.2, help="sandbox fault probability")
    p.add_argument("--timeout-delay", type=float, default=3.0, help="sandbox answer delay")
    p.add_argument(
        "--pause-share",
        type=float,
        default=0.0,
        help="share of worker faults that are SIGSTOP/SIGCONT pauses instead of SIGKILL",
    )
    p.add_argument("--pause-seconds", type=float, default=6.0, help="length of a pause")
    p.add_argument("--settle-timeout", type=float, default=600.0)
    p.add_argument(
        "--external",
        action="store_true",
        help="use an external PostgreSQL (--admin-url or --database-url), never restarted, "
        "instead of a private cluster restarted during the run",
    )
    p.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="with --external: admin db")
    p.add_argument("--database-url", default=None, help="use this database (implies --external)")
    p.add_argument("--keep-db", action="store_true", help="with --external: keep the database")
    p.add_argument("--workdir", type=Path, default=None, help="logs (default: a temp dir)")
    return p


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str | None]:
    if not (args.external or args.database_url):
        yield None  # a private cluster, made by the run
        return
    if args.database_url:
        yield args.database_url
        return
    with temporary_database(args.admin_url, keep=args.keep_db) as url:
        print(f"database {url.rpartition('/')[2]} created" + (" (kept)" if args.keep_db else ""))
        yield url


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    try:
        with _database(args) as database_url:
            config = ChaosConfig(
                database_url=database_url,
                subscriptions=args.subscriptions,
                seconds=args.seconds,
                seed=seed,
                workers=args.workers,
                worker_threads=args.threads,
                clock_offsets=args.clock_offsets,
                time_jumps=args.jumps,
                postgres_down=args.postgres_down,
                stale_sending_after=args.stale_sending_after,
                postgres_stop_mode=args.postgres_stop_mode,
                fault_rate=args.fault_rate,
                timeout_delay=args.timeout_delay,
                pause_share=args.pause_share,
                pause_seconds=args.pause_seconds,
                settle_timeout=args.settle_timeout,
                workdir=args.workdir,
            )
            print(
                f"chaos run: {config.subscriptions} subscriptions, {config.seconds:.0f}s of "
                f"chaos, seed {seed}, fault rate {config.fault_rate}"
            )
            result = run_chaos(config, echo=print)
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(result.table())
    print(f"\nlogs: {result.workdir}")
    if not result.ok:
        print("\n" + result.log_tails(60))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
