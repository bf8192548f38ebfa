"""``billing health scheduler|worker``: exit 0 when a process of that kind on this machine
wrote its heartbeat within ``BILLING_HEARTBEAT_MAX_AGE`` seconds, else 1 with one line
(the compose healthchecks of the scheduler and worker containers). Read-only."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click

from billing.entrypoints.cli.common import _settings


@click.command("health")
@click.argument("process", type=click.Choice(["scheduler", "worker"]))
@click.option("--any-host", is_flag=True, help="Count a process on any machine.")
def health(process: str, any_host: bool) -> None:
    """Is a scheduler or worker process alive here (a recent heartbeat)?"""
    import socket

    from billing.services.read.processes import is_live
    from billing.storage.database import Database

    settings = _settings()
    db = Database(settings.database_url, pool_size=1)
    max_age = timedelta(seconds=settings.heartbeat_max_age)
    try:
        live = is_live(db, process, datetime.now(UTC), max_age=max_age, any_host=any_host)
    finally:
        db.dispose()
    where = "anywhere" if any_host else f"on {socket.gethostname()}"
    if not live:
        seconds = f"{settings.heartbeat_max_age:g}s"
        click.echo(f"unhealthy: no {process} heartbeat {where} in the last {seconds}", err=True)
        sys.exit(1)
    click.echo(f"ok: {process} alive {where}")
