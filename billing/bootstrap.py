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

from billing.domain.dunning_policy import DEFAULT_POLICY, DunningPolicy
from billing.domain.durations import parse_duration
from billing.domain.policy_file import load_policy
from billing.domain.two_phase import TwoPhase
from billing.errors import ConfigurationError
from billing.gateway.accounts import Account, MerchantGateways
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import Gateway
from billing.gateway.rate_limit import DEFAULT_KEY, RateLimitedGateway, build_limiter
from billing.gateway.redact import RedactingFilter, Secrets
from billing.gateway.webhook_http import HttpWebhookSender
from billing.observability.logs import TEXT_FORMAT, ContextFilter, json_formatter
from billing.queue.dramatiq import (
    Actors,
    DramatiqDispatcher,
    DramatiqWebhookQueue,
    build_broker,
    declare_actors,
    declare_webhook_actor,
)
from billing.services.actions import (
    Actions,
    HeldOrderActions,
    InvoiceActions,
    PauseActions,
    RefundActions,
    ResolveActions,
    RetryActions,
    SubscriptionActions,
)
from billing.services.lease import LeaseClock, clock_lease, database_lease_clock
from billing.services.pipeline.batch_charging import BatchCharger
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.services.pipeline.upcoming import UpcomingNotices
from billing.services.pipeline.webhook_delivery import SettingsEndpoint, WebhookDelivering
from billing.services.ports import Clock, Dispatcher, offset_clock, system_clock
from billing.services.read.queries import Reads
from billing.services.test_clock import TestClockActions
from billing.services.webhook_endpoints import WebhookEndpoints
from billing.services.webhook_ports import WebhookQueue, WebhookSender
from billing.settings import Settings
from billing.settings_merchants import DEFAULT_ACCOUNT, MerchantAccount
from billing.storage.database import Database
from billing.storage.test_clock import DatabaseClock


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
    #: The month-start path: batches of attempt ids claimed, sent and settled together.
    batch_charger: BatchCharger
    scheduler: Scheduler
    actions: Actions
    read: Reads
    clock: Clock
    #: Webhook endpoints (operators) and their delivery (the scheduler pass and the worker).
    webhooks: WebhookEndpoints
    webhook_delivery: WebhookDelivering
    #: ``billing clock``: refuses unless test mode is on.
    test_clock: TestClockActions
    #: ``invoice.upcoming`` notices (a pass of the scheduler process).
    upcoming: UpcomingNotices

    def close(self) -> None:
        for part in (self.batch_charger, self.gateway, self.webhook_delivery.sender, self.clock):
            close = getattr(part, "close", None)
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
            settings.webhook_secret,
        )
        if secret is not None
    ]
    if settings.admin_tokens is not None:
        for entry in settings.admin_tokens.get_secret_value().split(","):
            values.append(entry.split(":", 2)[-1].strip())
    for account in settings.merchants.values():
        values.extend(account.secrets())
    return Secrets.of(secrets=values)


def gateway_config(settings: Settings, account: MerchantAccount | None = None) -> GatewayConfig:
    """How to reach one merchant account (the default one: BILLING_GATEWAY_*)."""
    if account is None:
        account = settings.merchant_accounts()[DEFAULT_ACCOUNT]
    try:
        return GatewayConfig(
            base_url=account.url,
            username=account.username or "",
            password=account.password or pydantic.SecretStr(""),
            token=account.token,
            dialect=account.dialect,
            connect_timeout=settings.gateway_connect_timeout,
            read_timeout=settings.gateway_read_timeout,
            write_timeout=settings.gateway_write_timeout,
            pool_timeout=settings.gateway_pool_timeout,
            # A call of the batch path never waits for a connection of its own process.
            max_connections=max(settings.gateway_max_connections, settings.charge_concurrency),
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigurationError(f"invalid gateway setting: {first['msg']}") from None


def build_gateways(settings: Settings, gateway: Gateway | None = None) -> MerchantGateways:
    """One gateway per merchant account: its own client (URL, dialect, credentials) behind
    its own rate limiter (a Redis key per account). A ``gateway`` handed in (tests, the
    demo) serves the default account; handed in as :class:`MerchantGateways`, it is every
    account's already."""
    if isinstance(gateway, MerchantGateways):
        return gateway
    accounts = {}
    for name, account in settings.merchant_accounts().items():
        one: Gateway
        if name == DEFAULT_ACCOUNT and gateway is not None:
            one = gateway
        else:
            one = GatewayClient(gateway_config(settings, account))
        key = DEFAULT_KEY if name == DEFAULT_ACCOUNT else f"{DEFAULT_KEY}:{name}"
        limiter = build_limiter(settings.redis_url, account.rate_limit, key=key)
        if limiter is not None:
            one = RateLimitedGateway(one, limiter, max_wait=settings.gateway_rate_limit_max_wait)
        accounts[name] = Account(
            name,
            one,
            two_phase=account.two_phase,
            fiscal_receipts=account.fiscal_receipts,
            dialect=account.dialect.value,
        )
    return MerchantGateways(accounts)


def two_phase_settings(settings: Settings) -> TwoPhase:
    """The default account's two-phase flag and what a refused capture leads to (the flag
    of every other account is its own: see ``HeldOrders``)."""
    return TwoPhase(settings.gateway_two_phase, settings.gateway_capture_failed)


def build_app(
    settings: Settings,
    *,
    broker: dramatiq.Broker | None = None,
    gateway: Gateway | None = None,
    clock: Clock = system_clock,
    policy: DunningPolicy | None = None,
    dispatcher: Dispatcher | None = None,
    webhook_sender: WebhookSender | None = None,
    webhook_queue: WebhookQueue | None = None,
) -> App:
    """The whole graph. In test mode (``BILLING_TEST_MODE``) the clock is the one stored in
    the database (unless a clock is handed in) and events carry ``livemode: false``."""
    LOG_REDACTION.remember(settings_secrets(settings))  # whatever logs, from now on
    db = Database(settings.database_url, pool_size=max(settings.worker_threads, 5))
    db.livemode = not settings.test_mode
    clock, lease_clock = _clocks(settings, db, clock)
    if policy is None:
        policy = load_policy(settings.dunning_policy) if settings.dunning_policy else DEFAULT_POLICY
    gateways = build_gateways(settings, gateway)
    broker = broker or build_broker(settings.redis_url)
    stale = timedelta(seconds=settings.stale_sending_after)
    charger = Charger(
        db,
        gateways,
        policy,
        clock=clock,
        stale_sending_after=stale,
        outage_threshold=settings.circuit_outage_threshold,
        longest_call=timedelta(seconds=settings.longest_gateway_call),
        lease_clock=lease_clock,
        two_phase=two_phase_settings(settings),
    )
    batch_charger = BatchCharger(charger, concurrency=settings.charge_concurrency)
    actors = declare_actors(
        broker,
        lambda: charger,
        queue_name=settings.queue_name,
        batch_charger=lambda: batch_charger,
    )
    dispatcher = dispatcher or DramatiqDispatcher(actors, batch_size=settings.charge_batch_size)
    delivering = _webhook_delivery(settings, db, broker, clock, webhook_sender, webhook_queue)
    lead = _upcoming_lead(settings)
    scheduler = Scheduler(
        db,
        dispatcher,
        policy,
        gateway=gateways,
        clock=clock,
        batch_size=settings.scheduler_batch_size,
        requeue_after=timedelta(seconds=settings.requeue_after),
        stale_sending_after=stale,
        lease_clock=lease_clock,
    )
    return App(
        settings=settings,
        db=db,
        policy=policy,
        gateway=gateways,
        broker=broker,
        actors=actors,
        dispatcher=dispatcher,
        charger=charger,
        batch_charger=batch_charger,
        scheduler=scheduler,
        actions=_actions(settings, db, gateways, dispatcher, charger, clock),
        read=Reads(db, policy=policy, clock=clock),
        clock=clock,
        webhooks=WebhookEndpoints(
            db, delivering.sender, delivering.queue, clock=clock, livemode=not settings.test_mode
        ),
        webhook_delivery=delivering,
        test_clock=TestClockActions(db, clock, enabled=settings.test_mode, upcoming_lead=lead),
        upcoming=UpcomingNotices(db, lead, clock=clock, batch_size=settings.scheduler_batch_size),
    )


def _clocks(settings: Settings, db: Database, clock: Clock) -> tuple[Clock, LeaseClock]:
    """The app's clock and the clock its leases are taken on. In test mode the system clock
    gives way to the one stored in the database; a drifted host (testing only) offsets its
    wall clock but keeps its leases on the database's."""
    if settings.test_mode and clock is system_clock:
        clock = DatabaseClock(db)
    drifted = clock is system_clock and settings.clock_offset_seconds != 0
    if drifted:
        clock = offset_clock(settings.clock_offset_seconds)
    # Lease times come from the database's clock, the one clock every host shares; a clock
    # passed in (tests drive a manual one) is used for leases too.
    lease_clock = database_lease_clock if clock is system_clock or drifted else clock_lease(clock)
    return clock, lease_clock


def _upcoming_lead(settings: Settings) -> timedelta | None:
    """How long before its due date an invoice.upcoming notice goes out (None: never)."""
    if not settings.invoice_upcoming_before:
        return None
    return parse_duration(settings.invoice_upcoming_before)


def _actions(
    settings: Settings,
    db: Database,
    gateways: MerchantGateways,
    dispatcher: Dispatcher,
    charger: Charger,
    clock: Clock,
) -> Actions:
    """What operators and the SaaS backend ask for, each with its collaborators."""
    key_ttl = timedelta(seconds=settings.idempotency_key_ttl)
    return Actions(
        subscriptions=SubscriptionActions(
            db, clock=clock, idempotency_ttl=key_ttl, merchant_accounts=frozenset(gateways.names)
        ),
        pausing=PauseActions(db, clock=clock),
        invoices=InvoiceActions(db, clock=clock),
        retries=RetryActions(db, dispatcher=dispatcher, clock=clock),
        refunds=RefundActions(
            db,
            gateway=gateways,
            clock=clock,
            banking_timezone=settings.gateway_banking_timezone,
            idempotency_ttl=key_ttl,
        ),
        resolve=ResolveActions(db, gateway=gateways, settlement=charger.settlement, clock=clock),
        held_orders=HeldOrderActions(
            db, gateway=gateways, settlement=charger.settlement, clock=clock
        ),
    )


def _webhook_delivery(
    settings: Settings,
    db: Database,
    broker: dramatiq.Broker,
    clock: Clock,
    sender: WebhookSender | None,
    queue: WebhookQueue | None,
) -> WebhookDelivering:
    endpoint = None
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        endpoint = SettingsEndpoint(
            settings.webhook_url, settings.webhook_secret.get_secret_value()
        )
    delivering: WebhookDelivering | None = None
    actor = declare_webhook_actor(
        broker,
        lambda: delivering,  # type: ignore[arg-type,return-value]
        queue_name=settings.queue_name,
        max_busy_threads=max(1, min(2, settings.worker_threads - 1), settings.worker_threads // 4),
    )
    delivering = WebhookDelivering(
        db,
        sender or HttpWebhookSender(),
        queue or DramatiqWebhookQueue(actor),
        clock=clock,
        timeout=settings.webhook_timeout,
        settings_endpoint=endpoint,
        # A lost message comes back like a charge's, but never while its try may still run.
        requeue_after=timedelta(seconds=max(settings.requeue_after, 2 * settings.webhook_timeout)),
    )
    return delivering


def configure_logging(
    level: str = "INFO", *, settings: Settings | None = None, log_format: str | None = None
) -> None:
    """Log to stderr; every root handler redacts the configured secrets and bindingIds
    (:data:`LOG_REDACTION`, fed by ``settings`` here and by :func:`build_app`), so DEBUG
    output of httpx/httpcore cannot leak them either. ``log_format`` (else the settings'
    ``BILLING_LOG_FORMAT``) ``json`` writes one JSON object per line carrying the logging
    context (subscription, invoice, attempt, order number); ``text`` is the default."""
    logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    if settings is not None:
        LOG_REDACTION.remember(settings_secrets(settings))
    fmt = log_format or (settings.log_format if settings is not None else "text")
    for handler in logging.getLogger().handlers:
        prepare_handler(handler, fmt)
    # httpx logs full request URLs at INFO; keep it quiet, our gateway client logs calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def prepare_handler(handler: logging.Handler, log_format: str = "text") -> None:
    """The logging context, then redaction, on ``handler``; JSON lines if asked."""
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())  # before redaction: its fields are redacted too
    if LOG_REDACTION not in handler.filters:
        handler.addFilter(LOG_REDACTION)
    if log_format == "json":
        handler.setFormatter(json_formatter())
