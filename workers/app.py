"""The composition root: settings in, wired services out. Connects to nothing by itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
import pydantic

from billing.errors import ConfigurationError
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.ratelimit import RateLimitedGateway, build_limiter
from billing.gateway.redact import RedactingFilter, Secrets
from billing.policy import DEFAULT_POLICY, DunningPolicy, load_policy
from billing.services.charging import Charger
from billing.services.ports import Clock, Gateway, system_clock
from billing.services.scheduler import Scheduler
from billing.services.subscriptions import Subscriptions
from billing.settings import Settings
from billing.storage.database import Database
from workers.actors import Actors, DramatiqDispatcher, declare_actors
from workers.broker import build_broker


@dataclass
class App:
    settings: Settings
    db: Database
    policy: DunningPolicy
    gateway: Gateway
    broker: dramatiq.Broker
    actors: Actors
    dispatcher: DramatiqDispatcher
    charger: Charger
    scheduler: Scheduler
    subscriptions: Subscriptions
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
        return GatewayConfig.from_settings(settings)
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
    charger = Charger(
        db,
        gateway,
        policy,
        clock=clock,
        stale_sending_after=stale,
        outage_threshold=settings.circuit_outage_threshold,
    )
    actors = declare_actors(broker, lambda: charger, queue_name=settings.queue_name)
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
        subscriptions=Subscriptions(db, clock=clock),
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
