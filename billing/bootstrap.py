"""The composition root: settings in, every service wired once, out.

Every collaborator (broker, gateway, dispatcher, clock, policy) can be handed in, so tests
and the demo build the same graph with fakes. Building connects to nothing: the database,
Redis and the gateway are reached on first use. This module decides nothing by itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
import pydantic

from billing.domain.dunning_policy import DEFAULT_POLICY, DunningPolicy, load_policy
from billing.errors import ConfigurationError
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import Gateway
from billing.gateway.rate_limit import RateLimitedGateway, build_limiter
from billing.gateway.redact import RedactingFilter, Secrets
from billing.queue.dramatiq import Actors, DramatiqDispatcher, build_broker, declare_actors
from billing.services.actions import (
    Actions,
    InvoiceActions,
    PauseActions,
    RefundActions,
    RetryActions,
    SubscriptionActions,
)
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.services.read.queries import Reads
from billing.settings import Settings
from billing.storage.database import Database


@dataclass
class App:
    settings: Settings
    db: Database
    policy: DunningPolicy
    gateway: Gateway
    broker: dramatiq.Broker
    actors: Actors
    dispatcher: Dispatcher
    charger: Charger
    scheduler: Scheduler
    actions: Actions
    read: Reads
    clock: Clock

    def close(self) -> None:
        close = getattr(self.gateway, "close", None)
        if callable(close):
            close()
        self.db.dispose()


#: Installed on the root handlers by :func:`configure_logging`; knows every configured secret.
LOG_REDACTION = RedactingFilter()


def settings_secrets(settings: Settings) -> Secrets:
    """Every secret value in the settings (the admin tokens one by one)."""
    values = [
        secret.get_secret_value()
        for secret in (
            settings.gateway_password,
            settings.gateway_token,
            settings.callback_secret,
            settings.console_session_secret,
        )
        if secret is not None
    ]
    if settings.admin_tokens is not None:
        for entry in settings.admin_tokens.get_secret_value().split(","):
            values.append(entry.split(":", 2)[-1].strip())
    return Secrets.of(secrets=values)


def gateway_config(settings: Settings) -> GatewayConfig:
    try:
        return GatewayConfig(
            base_url=settings.gateway_url,
            username=settings.gateway_username,
            password=settings.gateway_password,
            token=settings.gateway_token,
            connect_timeout=settings.gateway_connect_timeout,
            read_timeout=settings.gateway_read_timeout,
            write_timeout=settings.gateway_write_timeout,
            pool_timeout=settings.gateway_pool_timeout,
            max_connections=settings.gateway_max_connections,
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigurationError(f"invalid gateway setting: {first['msg']}") from None


def build_app(
    settings: Settings,
    *,
    broker: dramatiq.Broker | None = None,
    gateway: Gateway | None = None,
    clock: Clock = system_clock,
    policy: DunningPolicy | None = None,
    dispatcher: Dispatcher | None = None,
) -> App:
    LOG_REDACTION.remember(settings_secrets(settings))  # whatever logs, from now on
    db = Database(settings.database_url, pool_size=max(settings.worker_threads, 5))
    if policy is None:
        policy = load_policy(settings.dunning_policy) if settings.dunning_policy else DEFAULT_POLICY
    if gateway is None:
        gateway = GatewayClient(gateway_config(settings))
    limiter = build_limiter(settings.redis_url, settings.gateway_rate_limit)
    if limiter is not None:
        gateway = RateLimitedGateway(
            gateway, limiter, max_wait=settings.gateway_rate_limit_max_wait
        )
    if broker is None:
        broker = build_broker(settings.redis_url)
    stale = timedelta(seconds=settings.stale_sending_after)
    key_ttl = timedelta(seconds=settings.idempotency_key_ttl)
    charger = Charger(
        db,
        gateway,
        policy,
        clock=clock,
        stale_sending_after=stale,
        outage_threshold=settings.circuit_outage_threshold,
    )
    actors = declare_actors(broker, lambda: charger, queue_name=settings.queue_name)
    if dispatcher is None:
        dispatcher = DramatiqDispatcher(actors)
    scheduler = Scheduler(
        db,
        dispatcher,
        policy,
        gateway=gateway,
        clock=clock,
        batch_size=settings.scheduler_batch_size,
        requeue_after=timedelta(seconds=settings.requeue_after),
        stale_sending_after=stale,
    )
    return App(
        settings=settings,
        db=db,
        policy=policy,
        gateway=gateway,
        broker=broker,
        actors=actors,
        dispatcher=dispatcher,
        charger=charger,
        scheduler=scheduler,
        actions=Actions(
            subscriptions=SubscriptionActions(db, clock=clock, idempotency_ttl=key_ttl),
            pausing=PauseActions(db, clock=clock),
            invoices=InvoiceActions(db, clock=clock),
            retries=RetryActions(db, dispatcher=dispatcher, clock=clock),
            refunds=RefundActions(db, gateway=gateway, clock=clock, idempotency_ttl=key_ttl),
        ),
        read=Reads(db, policy=policy, clock=clock),
        clock=clock,
    )


def configure_logging(level: str = "INFO", *, settings: Settings | None = None) -> None:
    """Log to stderr; every root handler redacts the configured secrets and bindingIds
    (:data:`LOG_REDACTION`, fed by ``settings`` here and by :func:`build_app`), so DEBUG
    output of httpx/httpcore cannot leak them either."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    if settings is not None:
        LOG_REDACTION.remember(settings_secrets(settings))
    for handler in logging.getLogger().handlers:
        if LOG_REDACTION not in handler.filters:
            handler.addFilter(LOG_REDACTION)
    # httpx logs full request URLs at INFO; keep it quiet, our gateway client logs calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)
