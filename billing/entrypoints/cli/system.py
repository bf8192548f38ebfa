"""``billing`` commands that run or inspect the system: ``db upgrade``, ``status``,
``reconcile``, ``scheduler``, ``worker``, ``sandbox``, ``callbacks serve``, ``admin serve``
and ``demo``.

Long-running processes of ``workers/`` are started by module name (``os.execv``), never
imported. Nothing here decides anything about money: it starts processes, serves the
HTTP apps, or calls one use case and renders its report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from billing.entrypoints.cli import render
from billing.entrypoints.cli.common import _app, _emit, _settings, json_option
from billing.errors import ConfigurationError
from billing.queue.dramatiq import webhook_queue_name


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations."""
    from billing.storage.database import Database

    database = Database(_settings().database_url)
    database.upgrade(revision)
    click.echo(f"database is at revision {revision}")


@click.command("reconcile")
@json_option
def reconcile(as_json: bool) -> None:
    """Settle unknown outcomes by order status now; list what needs an operator or a refund."""
    from billing.services.pipeline.reconciliation import reconcile_now

    report = reconcile_now(_app().charger).as_dict()

    _emit(report, as_json, render.reconcile_report)


@click.command("status")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when charging is paused, an attempt waits for an operator or a second "
    "charge waits for its refund (for cron and monitoring scripts).",
)
@json_option
def status(check: bool, as_json: bool) -> None:
    """Is charging running (circuit breaker), counts by status, what needs a person, the
    scheduler's last pass and the live workers (their heartbeats)."""
    from datetime import timedelta

    from billing.gateway.accounts import account_summaries
    from billing.services.read.processes import process_status
    from billing.services.read.status import system_status

    app = _app()
    report = system_status(app.db, account_summaries(app.gateway))
    max_age = timedelta(seconds=app.settings.heartbeat_max_age)
    report["processes"] = process_status(app.db, app.clock(), max_age=max_age)
    _emit(report, as_json, render.status_summary)
    if check and needs_attention(report):
        sys.exit(1)


def needs_attention(report: dict[str, Any]) -> bool:
    """Whether ``billing status --check`` fails: charging paused or work for a person."""
    return bool(
        report["charging"]["state"] != "running"
        or report["needs_operator"]
        or report["needs_refund"]
    )


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Make one pass and exit.")
@json_option
def scheduler(once: bool, as_json: bool) -> None:
    """Find what is due and enqueue charges (a loop, or one pass)."""
    args = ["--once"] if once else []
    _exec([sys.executable, "-m", "workers.scheduler", *args, *(["--json"] if as_json else [])])


@click.command("worker")
@click.option("--processes", type=click.IntRange(min=1), default=None)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def worker(processes: int | None, threads: int | None) -> None:
    """Start Dramatiq worker processes for the project's actors.

    Redis being down is an outage, not a mistake: the workers start and wait for it (a
    worker restarted during a broker restart must come back, not exit)."""
    from billing.entrypoints.preflight import require_policy

    settings = _settings()
    if not settings.redis_url:
        raise ConfigurationError("BILLING_REDIS_URL is required to run workers")
    if settings.worker_metrics_port:  # read by dramatiq's Prometheus exposition server
        os.environ["dramatiq_prom_port"] = str(settings.worker_metrics_port)  # noqa: SIM112
    require_policy(settings)  # a bad file is one error line here, not a child's traceback
    _exec(
        worker_command(
            processes or settings.worker_processes,
            threads or settings.worker_threads,
            settings.queue_name,
        )
    )


def worker_command(processes: int, threads: int, queue_name: str) -> list[str]:
    """The dramatiq command line that runs the project's workers (``workers.worker``)."""
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.worker:setup",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        queue_name,
        webhook_queue_name(queue_name),  # deliveries, with few threads of their own
        "--skip-logging",
    ]


def _exec(argv: list[str]) -> NoReturn:
    """Replace this process with a long-running one of ``workers/`` (named, not imported)."""
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter and fixed arguments


# The sandbox command's options, applied by _sandbox_options (kept out of the command so
# its definition stays short).
_SANDBOX_OPTIONS = (
    click.option("--host", default="127.0.0.1", show_default=True),
    click.option("--port", default=8088, show_default=True, type=int),
    click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds per call."),
    click.option(
        "--timeout-delay",
        default=30.0,
        show_default=True,
        type=float,
        help="How long 'timeout' bindings stall after charging.",
    ),
    click.option(
        "--slow-delay",
        default=1.0,
        show_default=True,
        type=float,
        help="Extra delay of 'slow' bindings.",
    ),
    click.option(
        "--fault-rate",
        default=0.0,
        show_default=True,
        type=float,
        help="Share of charges answered with an injected fault (500, timeout, slow).",
    ),
    click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault draw."),
    click.option(
        "--dialect",
        type=click.Choice(["rbs", "all2pay"]),
        default=None,
        help="Strict mode: serve this dialect only, refusing what its router refuses. rbs = "
        "/payment/rest, form bodies but JSON for recurrentPayment.do; all2pay = /v1, JSON only. "
        "A wrong encoding gets HTTP 415, a wrong path 404. Default: lenient (/payment/rest, any "
        "encoding).",
    ),
    click.option(
        "--login",
        "logins",
        multiple=True,
        metavar="USER:PASSWORD",
        help="Another merchant login let in (repeat for several merchant accounts); any other "
        "credential gets errorCode 5 'Access denied'. The main login is sandbox:sandbox.",
    ),
    click.option(
        "--token",
        "tokens",
        multiple=True,
        metavar="TOKEN",
        help="A merchant token let in instead of a login (repeatable).",
    ),
    click.option(
        "--two-phase",
        is_flag=True,
        help="Two-phase merchant: approvals are held (APPROVED) until deposit.do captures them.",
    ),
)


def _sandbox_options(command: Callable[..., None]) -> Callable[..., None]:
    """Apply the sandbox command's options, first listed first in --help."""
    for option in reversed(_SANDBOX_OPTIONS):
        command = option(command)
    return command


@click.command("sandbox")
@_sandbox_options
def sandbox(
    host: str,
    port: int,
    latency: float,
    timeout_delay: float,
    slow_delay: float,
    fault_rate: float,
    seed: int,
    dialect: str | None,
    logins: tuple[str, ...],
    tokens: tuple[str, ...],
    two_phase: bool,
) -> None:
    """Serve the local gateway emulator (behaviour chosen by the bindingId's first word).

    \b
    Modes:
      lenient (default)    /payment/rest, any body encoding, login sandbox:sandbox
      --dialect D          strict: serve dialect D only (rbs or all2pay), refusing a wrong
                           encoding (HTTP 415) or path (404) as that router does
      --login/--token      more merchant logins; any other credential gets errorCode 5
      one-phase (default)  an approved charge is DEPOSITED at once
      --two-phase          an approved charge is held (APPROVED, orderStatus 1) until
                           deposit.do captures it; reverse.do releases a hold
      --fault-rate R       a share R of charges get an injected fault (500, timeout, slow)
    \b
    Behaviours (the bindingId's first word): approve, insufficient, recoverN, notfound,
    disabled, expired, stolen, zerodecline, syserror, http500, html, slow, timeout,
    pending (CREATED, paid after a status query), stuck (first order CREATED for good,
    until decline.do), flaky, holdrefuse (two-phase: first deposit.do refused),
    holdtimeout (two-phase: deposit.do answers only after --timeout-delay).
    decline.do makes a CREATED order DECLINED (actionCode 4005)."""
    from billing.domain.dialects import Dialect
    from billing.sandbox import SandboxConfig, serve

    serve(
        host,
        port,
        SandboxConfig(
            latency=latency,
            timeout_delay=timeout_delay,
            slow_delay=slow_delay,
            fault_rate=fault_rate,
            seed=seed,
            dialect=Dialect(dialect) if dialect else None,
            logins=_login_pairs(logins),
            tokens=tokens,
            two_phase=two_phase,
        ),
    )


def _login_pairs(logins: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """--login USER:PASSWORD entries as (user, password) pairs; a malformed one is refused."""
    pairs = []
    for entry in logins:
        user, sep, password = entry.partition(":")
        if not (sep and user and password):
            raise click.BadParameter("must be USER:PASSWORD", param_hint="--login")
        pairs.append((user, password))
    return tuple(pairs)


@click.group()
def callbacks() -> None:
    """The gateway's callback notifications."""


@callbacks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
def callbacks_serve(host: str, port: int) -> None:
    """Receive gateway callbacks: verify the checksum, then reconcile by order status."""
    import uvicorn

    from billing.entrypoints.http.callbacks import callback_config, create_callback_app

    app = _app(need_broker=True)
    asgi = create_callback_app(
        app.db, app.dispatcher, callback_config(app.settings), clock=app.clock
    )
    # No access log: it would print query strings, checksums included.
    uvicorn.run(asgi, host=host, port=port, access_log=False, log_config=None)


@click.command("demo")
@click.option("--subscriptions", "count", default=100, show_default=True, type=int)
@click.option("--periods", default=3, show_default=True, type=int)
@json_option
def demo(count: int, periods: int, as_json: bool) -> None:
    """Run the whole pipeline in one process on SQLite and an in-memory broker."""
    from billing.entrypoints.demo import run_demo

    run_demo(count=count, periods=periods, as_json=as_json)


@click.group()
def admin() -> None:
    """The admin HTTP API for operators and the SaaS backend."""


@admin.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8091, show_default=True, type=int)
def admin_serve(host: str, port: int) -> None:
    """Serve the admin API (OpenAPI at /openapi.json, docs at /docs), the console and
    the gateway callbacks."""
    import uvicorn

    from billing.auth_tokens import TokenConfig
    from billing.entrypoints.http.asgi import create_asgi_app

    app = _app(need_broker=True)
    tokens = app.settings.admin_tokens
    if tokens is None:
        raise ConfigurationError(
            "BILLING_ADMIN_TOKENS is required: name:role:token entries separated by commas"
        )
    asgi = create_asgi_app(app, TokenConfig.parse(tokens.get_secret_value()))
    # No access log: request lines would be noise, and no header is ever printed.
    uvicorn.run(asgi, host=host, port=port, access_log=False, log_config=None)
