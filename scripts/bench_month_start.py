"""Month-start benchmark: N subscriptions fall due at one instant; real processes charge them.

Starts ``billing sandbox``, ``billing scheduler`` and ``billing worker`` (the CLI, as in
production) on a fresh PostgreSQL database and a Redis db, inserts N ``approve`` subscriptions
due now (set-based), waits until every invoice is paid and prints: wall time, charges/s
sustained (10th to 90th percentile of the payment times), CPU seconds per 1,000 charges of
each process group, database transactions per charge, peak RSS per worker process, invoices
deposited more than once at the sandbox (must be 0), the busiest sliding second of gateway
calls as they arrived at the sandbox (against ``--rate-limit``) next to the busiest sliding
second of the limiter's *grants* (its Redis sorted set, sampled every 0.25 s: it keeps the
last 1.1 s), so limiter error and grant-to-arrival delay can be told apart, and, measured
first on the same sandbox with the same
concurrency (processes x ``--charge-concurrency`` calls in flight), the raw limit: a plain
httpx client calling recurrentPayment.do. Numbers, not assertions; exits 1 if the run timed
out or an invoice was charged twice.

PostgreSQL and Redis are shared with the machine: their CPU is the bench database's backends
(but the bench's own, which inserts and counts) plus PostgreSQL's own server processes, and
the whole Redis server (``INFO cpu``).
Every process it starts is stopped on exit, on Ctrl-C or on failure.

    .venv/bin/python scripts/bench_month_start.py --subscriptions 20000 --latency-ms 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[1]
BILLING = [sys.executable, "-m", "billing"]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BENCH_APP = "billing-bench"
WORKER_READY = "Worker process is ready for action"
TICK = os.sysconf("SC_CLK_TCK")
CHARGED = ("DEPOSITED", "REFUNDED", "REVERSED")
RATE_LIMIT_KEY = "billing:gateway:ratelimit"  # billing.gateway.limiters.DEFAULT_KEY


class BenchError(Exception):
    """The run could not be carried out."""


def _terminate(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


# ------------------------------------------------------------------------- processes


class Procs:
    """The processes this run started, each in its own session, logs in ``workdir``."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.popens: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> int:
        with (self.workdir / f"{name}.log").open("ab") as log:
            self.popens[name] = subprocess.Popen(
                [*BILLING, *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.popens[name].pid

    def check_alive(self) -> None:
        for name, popen in self.popens.items():
            if popen.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-1500:]
                raise BenchError(f"{name} exited with {popen.returncode}:\n{tail}")

    def stop(self, *names: str) -> None:
        for name in names or list(self.popens):
            popen = self.popens.pop(name, None)
            if popen is None:
                continue
            for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, sig)  # the whole session: dramatiq's children too
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=grace)
                    break


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime in clock ticks) of every process visible in /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _tree(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    pids, grown = {root}, True
    while grown:
        more = {pid for pid, (ppid, _) in table.items() if ppid in pids} - pids
        pids |= more
        grown = bool(more)
    return pids & set(table)


class CpuMeter:
    """CPU seconds used by groups of processes since :meth:`start`, sampled so that a
    process that exits between samples loses at most one interval."""

    def __init__(self, groups: dict[str, Callable[[dict[int, tuple[int, int]]], set[int]]]):
        self.groups = groups
        self.first: dict[str, dict[int, int]] = {g: {} for g in groups}
        self.last: dict[str, dict[int, int]] = {g: {} for g in groups}
        self.started = False

    def sample(self) -> None:
        table = _proc_table()
        for group, pids_of in self.groups.items():
            for pid in pids_of(table):
                ticks = table[pid][1]
                self.first[group].setdefault(pid, ticks if not self.started else 0)
                self.last[group][pid] = ticks

    def start(self) -> None:
        self.sample()
        self.started = True

    def seconds(self) -> dict[str, float]:
        return {
            g: sum(t - self.first[g][pid] for pid, t in self.last[g].items()) / TICK
            for g in self.groups
        }


def _peak_rss_mb(pids: Iterable[int]) -> list[float]:
    """VmHWM (peak resident set) of each process, in MiB."""
    peaks = []
    for pid in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            peaks += [int(x.split()[1]) / 1024 for x in status.splitlines() if x[:6] == "VmHWM:"]
    return sorted(peaks)


# ------------------------------------------------------------------------- raw limit


def _raw_process(url: str, requests: int, threads: int, tag: str) -> None:
    left, failed, lock = [requests], [], threading.Lock()
    body = {"userName": "sandbox", "password": "sandbox", "amount": 49900, "currency": "643"}
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with httpx.Client(timeout=60, limits=limits) as client:

        def run() -> None:
            while not failed:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                    number = f"raw{tag}{left[0]}"
                order = {**body, "orderNumber": number, "bindingId": f"approve-{number}"}
                response = client.post(f"{url}/recurrentPayment.do", json=order)
                if response.status_code != 200 or not response.json().get("success"):
                    failed.append(response.text[:200])

        pool = [threading.Thread(target=run) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    if failed:
        raise SystemExit(f"raw call failed: {failed[0]}")


def raw_limit(root: str, requests: int, processes: int, threads: int) -> float:
    """Charges per second a plain httpx client gets from the sandbox at this concurrency
    (P processes x T threads), from the sandbox's own request times; then resets it."""
    ctx = multiprocessing.get_context("spawn")
    share = -(-requests // processes)
    since = int(time.time() * 1000)
    children = [
        ctx.Process(target=_raw_process, args=(f"{root}/payment/rest", share, threads, f"{n}x"))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    if any(child.exitcode for child in children):
        raise BenchError("the raw-limit client failed")
    calls = httpx.get(f"{root}/sandbox/requests", params={"since": since}, timeout=60)
    httpx.post(f"{root}/sandbox/reset", timeout=30).raise_for_status()
    return sustained_rate(sorted(ms for ms, _ in calls.json()["requests"]))


# ------------------------------------------------------------------------- grants


class GrantSampler:
    """Copies the rate limiter's sorted set (member -> grant time in µs on the Redis
    server's clock, the same host's clock as the sandbox's) every ``interval`` seconds, so
    every grant is seen before the limiter trims it (it keeps the last 1.1 s)."""

    def __init__(self, url: str, key: str = RATE_LIMIT_KEY, interval: float = 0.25) -> None:
        self.client, self.key, self.interval = redis.Redis.from_url(url), key, interval
        self.grants: dict[bytes, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with contextlib.suppress(redis.RedisError):
                self.grants.update(self.client.zrange(self.key, 0, -1, withscores=True))

    def __enter__(self) -> GrantSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        with contextlib.suppress(redis.RedisError):
            self.grants.update(self.client.zrange(self.key, 0, -1, withscores=True))
        self.client.close()

    def times_ms(self, since_ms: int) -> list[int]:
        return sorted(t for t in (int(us // 1000) for us in self.grants.values()) if t >= since_ms)


def lag_quantiles(grants: list[int], arrivals: list[int]) -> dict[str, int] | None:
    """The k-th arrival minus the k-th grant (both sorted), in ms: calls are not matched one
    to one, so this is a lower bound on the spread of the grant-to-arrival delay."""
    n = min(len(grants), len(arrivals))
    if n < 100 or abs(len(grants) - len(arrivals)) > n // 100:
        return None
    lags = sorted(a - g for g, a in zip(sorted(grants)[:n], sorted(arrivals)[:n], strict=True))
    return {f"p{q}": lags[min(n - 1, n * q // 100)] for q in (50, 99)} | {"max": lags[-1]}


# ------------------------------------------------------------------------- helpers


def sustained_rate(times: list[int]) -> float:
    """Events per second between the 10th and the 90th percentile of ``times`` (ms)."""
    n = len(times)
    if n < 10:
        return 0.0
    return 0.8 * n / max((times[int(n * 0.9) - 1] - times[int(n * 0.1)]) / 1000, 1e-3)


def max_in_window(times: list[int], window_ms: int = 1000) -> int:
    """The largest number of times within any ``window_ms`` (sliding)."""
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _xacts(admin: Engine, name: str) -> int:
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = conn.scalar(
            text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :n"),
            {"n": name},
        )
    return int(value or 0)


INSERT = """
INSERT INTO subscriptions (customer_id, binding_id, binding_version, amount, currency,
    description, schedule, timezone, status, next_charge_at, created_at, updated_at)
SELECT 'bench-' || g, 'approve-bench-' || g, 1, 49900, '643', 'month-start benchmark',
    '0 3 1 * *', 'Europe/Moscow', 'active', :due, :due, :due
FROM generate_series(1, :n) AS g
"""


# ------------------------------------------------------------------------- the run


def _env(args: argparse.Namespace, url: str, root: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    tuning = {
        "BILLING_CHARGE_CONCURRENCY": str(args.charge_concurrency),
        "BILLING_CHARGE_BATCH_SIZE": str(args.batch_size),
    }
    return (
        env
        | tuning
        | {
            "BILLING_DATABASE_URL": url,
            "BILLING_REDIS_URL": args.redis_url,
            "BILLING_GATEWAY_URL": f"{root}/payment/rest",
            "BILLING_GATEWAY_USERNAME": "sandbox",
            "BILLING_GATEWAY_PASSWORD": "sandbox",
            "BILLING_GATEWAY_RATE_LIMIT": str(args.rate_limit),
            "PYTHONUNBUFFERED": "1",
        }
    )


class Bench:
    """One run: a fresh database, the Redis db flushed, the processes, the measurements."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.name = args, f"bench_h4_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(args.pg_admin, isolation_level="AUTOCOMMIT", pool_size=1)
        url = make_url(args.pg_admin).set(database=self.name)
        self.url = url.render_as_string(hide_password=False)
        # The bench's own connection (the insert, the progress count every second: O(N) a
        # count) is named so its backend is left out of PostgreSQL's CPU per charge.
        self.bench = create_engine(
            self.url,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            connect_args={"application_name": BENCH_APP},
        )
        self.redis = redis.Redis.from_url(args.redis_url)
        self.root = f"http://127.0.0.1:{_free_port()}"
        self.procs = Procs(workdir, _env(args, self.url, self.root))
        self.backends: set[int] = set()
        self.own_xacts = 0

    def run(self) -> dict[str, Any]:
        args = self.args
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {self.name}"))
        try:
            self.redis.flushdb()
            latency = str(args.latency_ms / 1000)
            port = self.root.rsplit(":", 1)[1]
            sandbox = self.procs.start("sandbox", "sandbox", "--port", port, "--latency", latency)
            _wait(lambda: _http_ok(f"{self.root}/sandbox/health"), 30, "the sandbox")
            upgrade = [*BILLING, "db", "upgrade"]
            subprocess.run(
                upgrade, env=self.procs.env, cwd=ROOT, check=True, capture_output=True, timeout=120
            )
            # The same calls in flight as the workers: P processes x the batch path's pool.
            concurrency = args.processes * args.charge_concurrency
            raw_n = int(
                args.raw_requests or min(10_000, 8000 * concurrency / max(args.latency_ms, 10))
            )
            raw = raw_limit(self.root, raw_n, args.processes, args.charge_concurrency)
            _log(f"raw limit: {raw:,.0f} charges/s ({raw_n} calls); starting billing processes")
            scheduler = self.procs.start("scheduler", "scheduler")
            worker = self.procs.start("worker", "worker", "--processes", str(args.processes),
                                      "--threads", str(args.threads))  # fmt: skip
            log = self.procs.workdir / "worker.log"
            ready = lambda: log.read_text(errors="replace").count(WORKER_READY) >= args.processes  # noqa: E731
            _wait(ready, 120, "the workers")
            aux = set(self._pids("backend_type <> 'client backend'"))
            postmaster = lambda t: {t[p][0] for p in aux if p in t}  # noqa: E731
            meter = CpuMeter({
                "workers": lambda t: _tree(worker, t),
                "scheduler": lambda t: _tree(scheduler, t),
                "sandbox": lambda t: _tree(sandbox, t),
                "postgres": lambda t: (self.backends | aux | postmaster(t)) & set(t),
            })  # fmt: skip
            return self._measure(meter, worker, raw)
        finally:
            self.procs.stop()
            self.redis.flushdb()
            self.redis.close()
            self.bench.dispose()
            if not args.keep:
                with self.admin.connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))
            self.admin.dispose()

    def _pids(self, where: str) -> list[int]:
        query = text(f"SELECT pid FROM pg_stat_activity WHERE {where}")
        with self.admin.connect() as conn:
            return [int(p) for p in conn.scalars(query, {"n": self.name})]

    def _scalar(self, sql: str, **params: object) -> Any:
        self.own_xacts += 1  # autocommit: one transaction per statement
        with self.bench.connect() as conn:
            result = conn.execute(text(sql), params)
            return result.scalar() if result.returns_rows else None

    def _wait_paid(self, meter: CpuMeter, due_ms: int) -> None:
        n = self.args.subscriptions
        deadline, paid, noted = time.monotonic() + self.args.timeout, 0, 0.0
        # Counting paid invoices reads every invoice: at a million, once a second took most of
        # a core from the processes measured. The figures come from paid_at, not from here.
        poll = max(1.0, n / 100_000)
        while paid < n and time.monotonic() < deadline:
            time.sleep(poll)
            self.procs.check_alive()
            self.backends |= set(self._pids(f"datname = :n AND application_name <> '{BENCH_APP}'"))
            meter.sample()
            paid = int(self._scalar("SELECT count(*) FROM invoices WHERE status = 'paid'"))
            if time.monotonic() - noted >= 15:
                noted = time.monotonic()
                _log(f"{paid}/{n} paid after {time.time() - due_ms / 1000:.0f}s")

    def _measure(self, meter: CpuMeter, worker: int, raw: float) -> dict[str, Any]:
        args, n = self.args, self.args.subscriptions
        redis_before, xacts_before = _redis_cpu(self.redis), _xacts(self.admin, self.name)
        meter.start()
        due = datetime.now(UTC)
        self._scalar(INSERT, n=n, due=due)
        # A production database knows its subscriptions table; one made a moment ago does
        # not (autovacuum has not sampled it yet): plan on real row counts, as there.
        self._scalar("ANALYZE subscriptions")
        due_ms = int(due.timestamp() * 1000)
        _log(f"{n} subscriptions due at {due:%H:%M:%S} (database {self.name})")
        with GrantSampler(args.redis_url) as sampler:
            self._wait_paid(meter, due_ms)
        meter.sample()
        cpu = meter.seconds()
        cpu["redis (whole server)"] = _redis_cpu(self.redis) - redis_before
        rss = _peak_rss_mb(_tree(worker, _proc_table()) - {worker})
        self.procs.stop("scheduler", "worker")  # their backends exit and flush statistics
        time.sleep(1.5)
        xacts = _xacts(self.admin, self.name) - xacts_before - self.own_xacts
        with self.bench.connect() as conn:
            paid_at = conn.scalars(text("SELECT paid_at FROM invoices WHERE status = 'paid'"))
            times = sorted(int(t.timestamp() * 1000) for t in paid_at)
            rows = conn.execute(text("SELECT order_number, invoice_id FROM charge_attempts"))
            invoice_of = {number: invoice for number, invoice in rows}
        ledger = httpx.get(f"{self.root}/sandbox/ledger", timeout=120).json()["orders"]
        calls = httpx.get(f"{self.root}/sandbox/requests", params={"since": due_ms}, timeout=120)
        deposits: dict[object, int] = {}
        for order in ledger:
            if order["state"] in CHARGED:
                key = invoice_of.get(order["orderNumber"], order["orderNumber"])
                deposits[key] = deposits.get(key, 0) + 1
        call_times = [ms for ms, _ in calls.json()["requests"]]
        grant_times = sampler.times_ms(due_ms)
        return {
            "subscriptions": n,
            "paid": len(times),
            "latency_ms": args.latency_ms,
            "processes x threads": f"{args.processes} x {args.threads}",
            "calls in flight per process (batch size)": (
                f"{args.charge_concurrency} ({args.batch_size})"
            ),
            "wall_seconds": round((times[-1] - due_ms) / 1000, 1) if times else None,
            "first_paid_after_seconds": round((times[0] - due_ms) / 1000, 1) if times else None,
            "charges_per_second (p10-p90)": round(sustained_rate(times), 1),
            "raw_limit_per_second": round(raw, 1),
            "share_of_raw_limit": round(sustained_rate(times) / raw, 3) if raw else None,
            "cpu_seconds_per_1000_charges": {
                g: round(s * 1000 / max(len(times), 1), 2) for g, s in cpu.items()
            },
            "transactions_per_charge": round(xacts / max(len(times), 1), 2),
            "peak_rss_mb_per_worker_process": [round(m, 1) for m in rss],
            "invoices_deposited_more_than_once": sum(1 for c in deposits.values() if c > 1),
            "deposits_at_sandbox": sum(deposits.values()),
            "gateway_calls": len(call_times),
            "max_gateway_calls_in_any_second": max_in_window(call_times),
            "limiter_grants": len(grant_times) if args.rate_limit else None,
            "max_grants_in_any_second": max_in_window(grant_times) if args.rate_limit else None,
            "grant_to_arrival_ms (k-th vs k-th)": lag_quantiles(grant_times, call_times),
            "rate_limit": args.rate_limit or None,
            "load_average_at_end (shared machine)": round(os.getloadavg()[0], 1),
        }


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(line: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {line}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="sandbox delay per call")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument("--rate-limit", type=int, default=0, help="BILLING_GATEWAY_RATE_LIMIT")
    parser.add_argument(
        "--charge-concurrency", type=int, default=100, help="BILLING_CHARGE_CONCURRENCY"
    )
    parser.add_argument("--batch-size", type=int, default=50, help="BILLING_CHARGE_BATCH_SIZE")
    parser.add_argument("--raw-requests", type=int, default=0, help="0: about 8 s worth")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the charges")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pg-admin", default=ADMIN_URL, help="a superuser connection URL")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="flushed!")
    args = parser.parse_args()
    if args.subscriptions < 10 or args.processes < 1 or args.threads < 1 or args.latency_ms < 0:
        parser.error("need --subscriptions >= 10, --processes/--threads >= 1, --latency-ms >= 0")
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    try:
        report = Bench(args, workdir).run()
    except (BenchError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"error: {exc} (logs in {workdir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; every process stopped (logs in {workdir})", file=sys.stderr)
        return 130
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key.replace('_', ' ') + ':':<40} {value}")
    ok = report["paid"] == args.subscriptions and not report["invoices_deposited_more_than_once"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
