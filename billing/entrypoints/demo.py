"""``billing demo``: the whole pipeline in one process, nothing to install.

SQLite in a temporary directory, the sandbox gateway on a free loopback port, the
scheduler, and Dramatiq workers in-process on the in-memory StubBroker: the same actors and
code path as production. A simulated clock walks about a hundred subscriptions with mixed
card behaviours through several monthly billing periods, then prints what happened.

It must never read the real environment's settings (``BILLING_*``, ``BILLING_CONFIG_FILE``):
not its database, not its broker (flushing a production queue), not its gateway or
credentials. :func:`demo_settings` builds its settings from its own values only.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, select

from billing.domain.model import AttemptState, InvoiceStatus
from billing.domain.subscription import NewSubscription
from billing.sandbox import SandboxConfig, SandboxServer
from billing.settings import Settings
from billing.storage.outbox_tables import OutboxEvent
from billing.storage.tables import ChargeAttempt, Event, Invoice, Subscription

#: (binding behaviour, share of subscriptions, what an operator would call it)
MIX: list[tuple[str, float]] = [
    ("approve", 0.55),
    ("recover1", 0.08),
    ("recover3", 0.06),
    ("insufficient", 0.07),
    ("notfound", 0.05),
    ("expired", 0.03),
    ("stolen", 0.02),
    ("flaky", 0.05),
    ("timeout", 0.03),
    ("slow", 0.03),
    ("disabled", 0.03),
]


class SimulatedClock:
    """A clock the demo moves forward; shared by the scheduler and the workers."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class _OwnSettings(Settings):
    """Settings from the values given here only: no environment, no config file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(**values: Any) -> Settings:
    """The demo's settings: its own values and the defaults, never ``BILLING_*`` from the
    environment or ``BILLING_CONFIG_FILE`` (no real database, broker or gateway)."""
    return _OwnSettings(**{"redis_url": None, "dunning_policy": None, **values})


@dataclass(frozen=True)
class DemoResult:
    summary: dict[str, Any]


def _behaviours(count: int, rng: random.Random) -> list[str]:
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    picked = [names[i % len(names)] for i in range(len(names))]  # each behaviour at least once
    picked += rng.choices(names, weights=weights, k=max(count - len(picked), 0))
    return picked[:count]


def run_demo(*, count: int = 100, periods: int = 3, as_json: bool = False) -> DemoResult:
    import dramatiq

    from billing.bootstrap import build_app, configure_logging

    if count < 1 or periods < 1:
        raise click.BadParameter("--subscriptions and --periods must be at least 1")
    console = Console(stderr=as_json)
    configure_logging("ERROR")  # the summary tells the story; errors still show
    rng = random.Random(7)
    start = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)
    clock = SimulatedClock(start)
    with (
        tempfile.TemporaryDirectory(prefix="billing-demo-") as workdir,
        SandboxServer(SandboxConfig(slow_delay=0.3, timeout_delay=1.5)) as gateway_server,
    ):
        settings = demo_settings(
            database_url=f"sqlite:///{Path(workdir) / 'demo.db'}",
            gateway_url=gateway_server.url,
            gateway_read_timeout=0.8,
            gateway_connect_timeout=1.0,
            gateway_write_timeout=1.0,
            gateway_pool_timeout=1.0,
            stale_sending_after=5.0,
            requeue_after=3600.0,
            scheduler_batch_size=200,
            worker_threads=8,
        )
        app = build_app(settings, clock=clock)
        app.db.upgrade()
        for number, behaviour in enumerate(_behaviours(count, rng), start=1):
            app.actions.subscriptions.create(
                NewSubscription(
                    customer_id=f"customer-{number:04d}",
                    binding_id=f"{behaviour}-{rng.getrandbits(64):016x}",
                    amount=rng.choice([29900, 49900, 99000, 149000]),
                    schedule="0 3 1 * *",
                    timezone="Europe/Moscow",
                    description=f"Plan for customer {number}",
                ),
                actor="demo",
                reason="demo signup",
            )
        worker = dramatiq.Worker(app.broker, worker_threads=settings.worker_threads)
        worker.start()
        step = timedelta(hours=12)
        end = start + timedelta(days=31 * periods + 1)
        steps = int((end - start) / step)
        try:
            with Progress(console=console, transient=as_json) as progress:
                task = progress.add_task("billing periods", total=steps)
                for _ in range(steps):
                    clock.advance(step)
                    app.upcoming.run_pass()  # invoice.upcoming, as the scheduler process does
                    app.scheduler.run_pass()
                    app.broker.join(settings.queue_name)
                    worker.join()
                    progress.update(
                        task, advance=1, description=f"simulated {clock():%Y-%m-%d %H:%M} UTC"
                    )
        finally:
            worker.stop()
        summary = _summary(app, gateway_server)
        app.close()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print(console, summary)
    return DemoResult(summary)


def _summary(app: Any, gateway_server: SandboxServer) -> dict[str, Any]:
    with app.db.transaction() as session:
        invoices = dict(
            session.execute(select(Invoice.status, func.count()).group_by(Invoice.status)).all()
        )
        statuses = dict(
            session.execute(
                select(Subscription.status, func.count()).group_by(Subscription.status)
            ).all()
        )
        retried = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.attempt_count > 1)
        )
        recovered = session.scalar(
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.status == InvoiceStatus.PAID, Invoice.failing_since.is_not(None))
        )
        revenue = session.scalar(
            select(func.coalesce(func.sum(Invoice.amount), 0)).where(
                Invoice.status == InvoiceStatus.PAID
            )
        )
        paid_attempts = session.scalar(
            select(func.count())
            .select_from(ChargeAttempt)
            .where(ChargeAttempt.state == AttemptState.PAID)
        )
        attempts = session.scalar(select(func.count()).select_from(ChargeAttempt))
        events = dict(
            session.execute(select(OutboxEvent.type, func.count()).group_by(OutboxEvent.type)).all()
        )
        went_through = dict(
            session.execute(
                select(Event.to_state, func.count(func.distinct(Event.subscription_id)))
                .where(Event.kind == "subscription_status")
                .group_by(Event.to_state)
            ).all()
        )
    deposited = gateway_server.ledger.deposited_count()
    return {
        "subscriptions": sum(statuses.values()),
        "invoices": sum(invoices.values()),
        "invoices_paid": invoices.get("paid", 0),
        "invoices_open": invoices.get("open", 0),
        "invoices_uncollectible": invoices.get("uncollectible", 0),
        "invoices_retried": retried or 0,
        "invoices_recovered": recovered or 0,
        "charge_attempts": attempts or 0,
        "subscriptions_by_status": statuses,
        "suspended": statuses.get("suspended", 0),
        "waiting_for_new_card": statuses.get("needs_payment_method", 0),
        "ever_past_due": went_through.get("past_due", 0),
        "ever_suspended": went_through.get("suspended", 0),
        "ever_waited_for_new_card": went_through.get("needs_payment_method", 0),
        "canceled_by_dunning": went_through.get("canceled", 0),
        "revenue_minor_units": int(revenue or 0),
        "gateway_deposited_orders": deposited,
        "paid_attempts_recorded": paid_attempts or 0,
        "exactly_once": deposited == (paid_attempts or 0),
        "events_by_type": events,
    }


def _print(console: Console, s: dict[str, Any]) -> None:
    table = Table(title="billing demo", show_header=False)
    rows = [
        ("subscriptions", s["subscriptions"]),
        ("invoices opened", s["invoices"]),
        ("invoices paid", s["invoices_paid"]),
        ("invoices retried (more than one attempt)", s["invoices_retried"]),
        ("invoices recovered after a failure", s["invoices_recovered"]),
        ("invoices still open", s["invoices_open"]),
        ("invoices uncollectible (canceled)", s["invoices_uncollectible"]),
        ("subscriptions that went past due", s["ever_past_due"]),
        ("subscriptions suspended (ever / now)", f"{s['ever_suspended']} / {s['suspended']}"),
        (
            "waiting for a new card (ever / now)",
            f"{s['ever_waited_for_new_card']} / {s['waiting_for_new_card']}",
        ),
        ("subscriptions canceled by dunning", s["canceled_by_dunning"]),
        ("revenue", f"{s['revenue_minor_units'] / 100:,.2f} RUB"),
        (
            "charges the gateway took / recorded paid",
            f"{s['gateway_deposited_orders']} / {s['paid_attempts_recorded']}",
        ),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    console.print(
        "subscriptions by status: "
        + ", ".join(f"{k}={v}" for k, v in sorted(s["subscriptions_by_status"].items()))
    )
    console.print(
        "events for the SaaS: "
        + ", ".join(f"{k}={v}" for k, v in sorted(s["events_by_type"].items()))
    )
    verdict = "[green]exactly once[/green]" if s["exactly_once"] else "[red]MISMATCH[/red]"
    console.print(f"money check: every charge the gateway took is recorded once: {verdict}")
