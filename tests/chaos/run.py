"""The chaos run: "never charge twice, never lose a charge", checked against real processes.

:func:`run_chaos` starts a private ``redis-server``, the sandbox gateway (injecting
time-outs after charging, HTTP 500 before charging and slow answers), ``billing
scheduler`` and several ``billing worker`` processes against a PostgreSQL database,
creates N subscriptions falling due during the run, then:

* the chaos phase: workers are killed with SIGKILL (with their Dramatiq children) at
  random and restarted after a short random delay; Redis is killed once halfway and
  started again on the same port, empty;
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
     nor handed to an operator.

Nothing here touches the machine's shared Redis: every billing process gets
``BILLING_REDIS_URL`` pointing at the run's own ``redis-server`` on a free loopback port.
Every process is started in its own session and stopped in ``finally``; their logs are
kept in the run's directory.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import redis
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url

from billing.storage.database import Database
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

ROOT = Path(__file__).resolve().parents[1]
BILLING = [sys.executable, "-m", "billing"]

#: The card behaviours of the run (sandbox binding-id prefixes) and their shares.
BINDING_MIX: tuple[tuple[str, float], ...] = (
    ("approve", 0.80),
    ("recover2", 0.08),
    ("insufficient", 0.07),
    ("notfound", 0.05),
)
#: How each behaviour's invoice must end: invoice status, or the subscription status of
#: an invoice still open.
EXPECTED_END: Mapping[str, frozenset[str]] = {
    "approve": frozenset({"paid"}),
    "recover2": frozenset({"paid"}),
    "insufficient": frozenset({"suspended", "uncollectible"}),
    "notfound": frozenset({"needs_payment_method", "uncollectible"}),
}
IN_FLIGHT = ("pending", "sending", "unknown")
#: Subscription statuses for which an open invoice has a documented next step.
WAITING_STATUSES = frozenset({"suspended", "needs_payment_method"})
RETRYING_STATUSES = frozenset({"active", "past_due"})
BILLABLE = ("active", "past_due", "needs_payment_method")
SCHEDULE = "0 3 1 * *"
#: What a Dramatiq worker process logs once it consumes messages.
WORKER_READY = "Worker process is ready for action"
TIMEZONE = "Europe/Moscow"

#: The fast dunning policy, with grace periods longer than any run so that invoices end
#: in stable, documented states (suspended, needs_payment_method) rather than racing the
#: audit, and "unknown" outcomes are never handed to an operator during a run.
CHAOS_POLICY = """\
# Written by tests.chaos.run: config/dunning-fast.toml with long grace periods.
[soft_decline]
retry_after = ["1s", "1s", "1s"]
on_exhausted = "suspend"
cancel_after = "1h"

[hard_decline]
confirm_after = "1s"
cancel_after = "1h"

[do_not_retry]
action = "needs_payment_method"

[transient]
backoff = ["1s", "2s"]

[unknown]
reconcile_backoff = ["1s", "2s"]
give_up_after = "30m"

[merchant_config]
pause_backoff = ["2s", "5s"]
"""


class ChaosError(Exception):
    """The run could not be carried out (a process would not start, a bad setting)."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ChaosConfig:
    """Every knob of a chaos run. Durations are in seconds."""

    database_url: str
    subscriptions: int = 150
    #: Length of the chaos phase (worker kills, the Redis restart).
    seconds: float = 30.0
    seed: int = 1
    #: Due times are spread over this many seconds from the start; None = 60 % of
    #: ``seconds``, so that work is in flight while processes die.
    spread: float | None = None
    workers: int = 2
    worker_threads: int = 8
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

    @property
    def due_spread(self) -> float:
        return self.seconds * 0.6 if self.spread is None else self.spread


# ---------------------------------------------------------------------------- the audit


@dataclass(frozen=True)
class OrderRow:
    """One order of the sandbox ledger."""

    order_number: str
    state: str


@dataclass(frozen=True)
class AttemptRow:
    id: int
    invoice_id: int
    order_number: str
    state: str
    needs_refund: bool = False
    next_check_at: datetime | None = None


@dataclass(frozen=True)
class InvoiceRow:
    id: int
    subscription_id: int
    status: str
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    status: str
    binding_id: str


@dataclass
class Audit:
    """The counts and every broken invariant found by :func:`audit`."""

    subscriptions: int = 0
    invoices: int = 0
    attempts: int = 0
    ledger_orders: int = 0
    ledger_deposited: int = 0
    invoices_by_status: Counter[str] = field(default_factory=Counter)
    #: Open invoices by their documented next step.
    open_by_step: Counter[str] = field(default_factory=Counter)
    subscriptions_by_status: Counter[str] = field(default_factory=Counter)
    attempts_by_state: Counter[str] = field(default_factory=Counter)
    ledger_by_state: Counter[str] = field(default_factory=Counter)
    #: Second (or later) deposits for one invoice that the system flagged for refund.
    double_charges_flagged: int = 0
    #: Attempts still ``unknown`` but with a status check planned.
    unknown_with_check: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def behaviour_of(binding_id: str) -> str:
    """The sandbox behaviour token of a binding id (``approve-chaos-1`` → ``approve``)."""
    return binding_id.split("-", 1)[0].lower()


def audit(
    orders: Sequence[OrderRow],
    attempts: Sequence[AttemptRow],
    invoices: Sequence[InvoiceRow],
    subscriptions: Sequence[SubscriptionRow],
    *,
    max_listed: int = 20,
) -> Audit:
    """Check the invariants; pure. ``max_listed`` caps the examples listed per invariant."""
    result = Audit(
        subscriptions=len(subscriptions),
        invoices=len(invoices),
        attempts=len(attempts),
        ledger_orders=len(orders),
    )
    problems: dict[str, list[str]] = {}

    def fail(invariant: str, text: str) -> None:
        problems.setdefault(invariant, []).append(text)

    by_number = {a.order_number: a for a in attempts}
    attempts_by_invoice: dict[int, list[AttemptRow]] = {}
    for a in attempts:
        attempts_by_invoice.setdefault(a.invoice_id, []).append(a)
        result.attempts_by_state[a.state] += 1
    subs = {s.id: s for s in subscriptions}
    for s in subscriptions:
        result.subscriptions_by_status[s.status] += 1

    # (1) and (2): the bank's ledger against the database.
    deposited_numbers: set[str] = set()
    deposits_by_invoice: dict[int, list[AttemptRow]] = {}
    for order in orders:
        result.ledger_by_state[order.state] += 1
        if order.state != "DEPOSITED":
            continue
        result.ledger_deposited += 1
        deposited_numbers.add(order.order_number)
        attempt = by_number.get(order.order_number)
        if attempt is None:
            fail("2 lost charge", f"order {order.order_number} took money; no attempt has it")
            continue
        deposits_by_invoice.setdefault(attempt.invoice_id, []).append(attempt)
        if attempt.state != "paid":
            fail(
                "2 lost charge",
                f"order {order.order_number} took money; attempt {attempt.id} "
                f"(invoice {attempt.invoice_id}) is recorded {attempt.state}",
            )
    for invoice_id, paid in sorted(deposits_by_invoice.items()):
        if len(paid) <= 1:
            continue
        flagged = sum(1 for a in paid if a.needs_refund)
        if flagged >= len(paid) - 1:
            result.double_charges_flagged += len(paid) - 1
        else:
            numbers = ", ".join(a.order_number for a in paid)
            fail(
                "1 double charge",
                f"invoice {invoice_id} was charged {len(paid)} times ({numbers}); "
                f"{flagged} flagged for refund",
            )
    for a in attempts:
        if a.state == "paid" and a.order_number not in deposited_numbers:
            fail(
                "2 phantom payment",
                f"attempt {a.id} (invoice {a.invoice_id}) is paid; the bank has no deposit "
                f"for order {a.order_number}",
            )

    # (3): every invoice paid, or waiting with a documented next step, or closed.
    for inv in invoices:
        result.invoices_by_status[inv.status] += 1
        sub = subs.get(inv.subscription_id)
        sub_status = sub.status if sub is not None else "missing"
        own = attempts_by_invoice.get(inv.id, [])
        end: str
        if inv.status == "paid":
            end = "paid"
            if not any(a.state == "paid" and a.order_number in deposited_numbers for a in own):
                fail("3 invoice state", f"invoice {inv.id} is paid with no deposited attempt")
        elif inv.status == "open":
            end = sub_status
            if sub_status in WAITING_STATUSES and inv.next_attempt_at is None:
                result.open_by_step[sub_status] += 1
            elif sub_status in RETRYING_STATUSES and inv.next_attempt_at is not None:
                result.open_by_step["retry scheduled"] += 1
            elif any(a.state in IN_FLIGHT for a in own):
                result.open_by_step["charge in flight"] += 1
            else:
                fail(
                    "3 invoice state",
                    f"invoice {inv.id} is open, subscription {inv.subscription_id} is "
                    f"{sub_status}, next attempt {inv.next_attempt_at}: no next step",
                )
        elif inv.status == "uncollectible":
            end = "uncollectible"
            if sub_status != "canceled":
                fail(
                    "3 invoice state",
                    f"invoice {inv.id} is uncollectible but subscription "
                    f"{inv.subscription_id} is {sub_status}",
                )
        else:
            end = inv.status
            fail("3 invoice state", f"invoice {inv.id} is {inv.status}")
        if sub is not None:
            expected = EXPECTED_END.get(behaviour_of(sub.binding_id))
            if expected is not None and end not in expected:
                fail(
                    "3 wrong end",
                    f"invoice {inv.id} ({sub.binding_id}) ended {end}; "
                    f"expected {' or '.join(sorted(expected))}",
                )
    invoiced = {inv.subscription_id for inv in invoices}
    for s in subscriptions:
        if s.id not in invoiced:
            fail("3 invoice state", f"subscription {s.id} fell due but has no invoice")
    paid_invoices = {a.invoice_id for a in attempts if a.state == "paid" and not a.needs_refund}
    statuses = {inv.id: inv.status for inv in invoices}
    for invoice_id in sorted(paid_invoices):
        if statuses.get(invoice_id) != "paid":
            fail(
                "3 invoice state",
                f"invoice {invoice_id} has a paid attempt but is {statuses.get(invoice_id)}",
            )

    # (4): nothing left half-done.
    for a in attempts:
        if a.state in ("pending", "sending"):
            fail("4 stuck attempt", f"attempt {a.id} (invoice {a.invoice_id}) is {a.state}")
        elif a.state == "unknown":
            if a.next_check_at is None:
                fail("4 stuck attempt", f"attempt {a.id} is unknown with no check planned")
            else:
                result.unknown_with_check += 1
        elif a.state == "needs_operator":
            fail("4 stuck attempt", f"attempt {a.id} (invoice {a.invoice_id}) needs an operator")

    for invariant, texts in sorted(problems.items()):
        result.violations.append(f"[{invariant}] {len(texts)} case(s)")
        result.violations.extend(f"    {t}" for t in texts[:max_listed])
        if len(texts) > max_listed:
            result.violations.append(f"    ... and {len(texts) - max_listed} more")
    return result


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
            ("  paid", str(a.invoices_by_status.get("paid", 0))),
            ("  open (in dunning)", str(a.invoices_by_status.get("open", 0))),
            *((f"    {k}", str(v)) for k, v in sorted(a.open_by_step.items())),
            ("  uncollectible", str(a.invoices_by_status.get("uncollectible", 0))),
            ("ledger orders", str(a.ledger_orders)),
            *((f"  {k}", str(v)) for k, v in sorted(a.ledger_by_state.items())),
            ("attempts", str(a.attempts)),
            *((f"  {k}", str(v)) for k, v in sorted(a.attempts_by_state.items())),
            ("double charges flagged for refund", str(a.double_charges_flagged)),
            ("workers killed (SIGKILL)", str(self.workers_killed)),
            ("worker restarts", str(self.worker_restarts)),
            *(
                [("workers paused (SIGSTOP)", str(self.workers_paused))]
                if self.config.pause_share
                else []
            ),
            ("redis restarts", str(self.redis_restarts)),
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
        self.faults: list[str] = []
        self.unexpected_exits: list[str] = []
        self._started = time.monotonic()
        self._db = Database(config.database_url, pool_size=2)

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
            "BILLING_DATABASE_URL": c.database_url,
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
            "PYTHONUNBUFFERED": "1",
        }

    def _process(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        process = Process(name, argv, env, self.workdir / f"{name}.log")
        self.processes[name] = process
        return process

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self._started:7.1f}s] {text}"
        self.faults.append(line)
        self.echo(line)
        with (self.workdir / "run.log").open("a") as out:
            out.write(line + "\n")

    # -- the phases -----------------------------------------------------------------------

    def run(self) -> ChaosResult:
        c = self.config
        env = self.env()
        try:
            self.echo(f"chaos run in {self.workdir}")
            self._start_redis(env)
            self._start_sandbox(env)
            self._migrate(env)
            chaos_start = self._create_subscriptions()
            self._process("scheduler", [*BILLING, "scheduler"], env).start()
            for n in range(c.workers):
                argv = [*BILLING, "worker", "--processes", "1", "--threads", str(c.worker_threads)]
                self._process(f"worker-{n + 1}", argv, env).start()
            self.note(
                f"started: scheduler, {c.workers} workers, redis :{self.redis_port}, "
                f"sandbox :{self.sandbox_port}, {c.subscriptions} subscriptions"
            )
            self._chaos_phase(env, chaos_start)
            settle = self._quiet_phase()
            for name in ["scheduler", *self._worker_names()]:
                self.processes[name].stop()
            orders = self._ledger()
            attempts, invoices, subscriptions = self._tables()
        finally:
            self._stop_all()
            self._db.dispose()
        return ChaosResult(
            config=c,
            audit=audit(orders, attempts, invoices, subscriptions),
            workdir=self.workdir,
            workers_killed=self.workers_killed,
            workers_paused=self.workers_paused,
            worker_restarts=self.worker_restarts,
            redis_restarts=self.redis_restarts,
            duration=time.monotonic() - self._started,
            settle_seconds=settle,
            faults=self.faults,
            unexpected_exits=self.unexpected_exits,
            log_errors=_count_log_errors(self.workdir),
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

    def _create_subscriptions(self) -> float:
        """Insert the subscriptions in one statement; due times spread over the run.
        Returns the monotonic time the chaos phase starts."""
        c = self.config
        kinds = [k for k, _ in BINDING_MIX]
        weights = [w for _, w in BINDING_MIX]
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for i in range(c.subscriptions):
            kind = self.rng.choices(kinds, weights)[0]
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
                    "schedule": SCHEDULE,
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
        return time.monotonic()

    def _worker_names(self) -> list[str]:
        return [f"worker-{n + 1}" for n in range(self.config.workers)]

    def _chaos_phase(self, env: Mapping[str, str], start: float) -> None:
        c = self.config
        end = start + c.seconds
        redis_at = [
            start + c.seconds * (k + 1) / (c.redis_restarts + 1) for k in range(c.redis_restarts)
        ]
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
            if redis_at and now >= redis_at[0]:
                redis_at.pop(0)
                self._restart_redis(env)
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

    def _restart_worker(self, name: str) -> None:
        self.processes[name].start()
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
        now = datetime.now(UTC)
        with self._db.transaction() as session:
            rows = session.execute(
                select(ChargeAttempt.state, func.count())
                .where(ChargeAttempt.state.in_(IN_FLIGHT))
                .group_by(ChargeAttempt.state)
            ).all()
            in_flight = {str(state): int(n) for state, n in rows}
            retries = session.scalar(
                select(func.count())
                .select_from(Invoice)
                .where(Invoice.status == "open", Invoice.next_attempt_at.is_not(None))
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
