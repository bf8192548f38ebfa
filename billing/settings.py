"""Settings from ``BILLING_*`` environment variables, a ``.env`` file and an optional TOML
file.

Precedence: explicit arguments > environment > ``.env`` in the working directory > TOML file
(``BILLING_CONFIG_FILE``) > defaults. An unknown ``BILLING_*`` name is a warning on stderr
naming the closest setting (difflib), never an error. Every mistake (a bad log level, a
malformed Redis URL, an unwritable SQLite path, a weak console session secret…) is refused
here, before anything starts, as one line naming the setting; a secret's value is never
echoed. Reading ``.env`` and spotting unknown names is :mod:`billing.settings_sources`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from billing.domain.dialects import Dialect, parse_dialect
from billing.domain.two_phase import CaptureFailure
from billing.errors import ConfigurationError
from billing.settings_checks import check_database_url, check_redis_url, check_session_secret
from billing.settings_merchants import DEFAULT_ACCOUNT, MerchantAccount, check_merchants
from billing.settings_sources import ENV_FILE, dotenv_names, known_dotenv_values, unknown_names

DEFAULT_DATABASE_URL = "sqlite:///billing.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
#: Optional settings an empty value leaves unset (``BILLING_REDIS_URL=`` is no Redis URL).
OPTIONAL = (
    "redis_url",
    "console_session_secret",
    "admin_tokens",
    "webhook_url",
    "webhook_secret",
    "callback_secret",
    "callback_public_key",
)


class Settings(BaseSettings):
    """Every knob of the service. Secrets are ``SecretStr``: they never print."""

    model_config = SettingsConfigDict(
        env_prefix="BILLING_", extra="forbid", frozen=True, env_nested_delimiter="__"
    )

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None

    gateway_url: str = "http://127.0.0.1:8088/payment/rest"
    gateway_username: str = "sandbox"
    gateway_password: SecretStr = SecretStr("sandbox")
    gateway_token: SecretStr | None = None
    #: ``rbs`` (classic RBS REST: /payment/rest, form bodies but recurrentPayment.do's JSON)
    #: or ``all2pay`` (/v1, JSON bodies everywhere): see billing/domain/dialects.py.
    gateway_dialect: Dialect = Dialect.RBS
    #: The default account's approved charges are held until captured with deposit.do.
    gateway_two_phase: bool = False
    #: Send a subscription's customer email/phone in additionalParameters (fiscal receipts).
    gateway_fiscal_receipts: bool = True
    #: More merchant accounts by name (``BILLING_MERCHANTS__EU__URL=…`` or a
    #: ``[merchants.eu]`` TOML table); the ``default`` one is the BILLING_GATEWAY_* settings.
    merchants: dict[str, MerchantAccount] = Field(default_factory=dict)
    gateway_connect_timeout: float = Field(default=5.0, gt=0)
    gateway_read_timeout: float = Field(default=30.0, gt=0)
    gateway_write_timeout: float = Field(default=10.0, gt=0)
    #: Waiting for a free pooled connection (50 busy threads) before the call is "not sent".
    gateway_pool_timeout: float = Field(default=5.0, gt=0)
    gateway_max_connections: int = Field(default=50, ge=1)
    #: The gateway's banking day (reverse.do is possible only on the day of payment there).
    gateway_banking_timezone: str = "Europe/Moscow"
    #: Global limit on gateway calls per second across all workers (Redis-backed); 0 = none.
    gateway_rate_limit: int = Field(default=0, ge=0)
    #: How long a call waits for a slot before giving up (a transient, never-sent failure).
    gateway_rate_limit_max_wait: float = Field(default=60.0, gt=0)
    #: A capture the gateway refused: ``reverse`` (release the hold, retry later with a new
    #: order) or ``operator`` (leave the hold for `billing capture` / `billing release`).
    gateway_capture_failed: CaptureFailure = CaptureFailure.REVERSE

    dunning_policy: Path | None = None

    scheduler_interval: float = Field(default=10.0, gt=0)
    scheduler_batch_size: int = Field(default=500, ge=1, le=100_000)
    #: A created attempt not picked up by a worker after this long is enqueued again.
    requeue_after: float = Field(default=300.0, gt=0)
    #: An attempt in ``sending`` for longer than this is reconciled by status.
    stale_sending_after: float = Field(default=120.0, gt=0)
    queue_name: str = "billing"
    worker_processes: int = Field(default=2, ge=1)
    worker_threads: int = Field(default=8, ge=1)
    #: Attempts per charge message: a worker claims, sends and settles them together.
    charge_batch_size: int = Field(default=50, ge=1, le=1000)
    #: Gateway calls in flight at once per worker process (the batch path's thread pool;
    #: the gateway connection pool is at least as large).
    charge_concurrency: int = Field(default=100, ge=1, le=1000)
    #: Consecutive gateway outages (transient answers) before charging pauses for everyone.
    circuit_outage_threshold: int = Field(default=20, ge=1)
    log_level: str = "INFO"
    #: ``text`` (default) or ``json``: one JSON object per line with the subscription,
    #: invoice, attempt and order a line is about.
    log_format: str = "text"
    #: Port of the scheduler's Prometheus endpoint (``/metrics``); 0 = none.
    scheduler_metrics_port: int = Field(default=9192, ge=0, le=65535)
    #: Port of the workers' Prometheus endpoint (dramatiq's exposition server, serving
    #: every worker process of the machine); 0 = none.
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    #: A worker or scheduler whose heartbeat is older than this is not live.
    heartbeat_max_age: float = Field(default=60.0, gt=0)

    #: Gateway callbacks: HMAC-SHA256 shared secret and/or the RSA public key (PEM text or
    #: a path to a PEM file). Unsigned callbacks are refused unless explicitly allowed.
    callback_secret: SecretStr | None = None
    callback_public_key: str | None = None
    callback_allow_unsigned: bool = False

    #: The admin API's bearer tokens: ``name:role:token`` entries separated by commas, roles
    #: viewer / operator / backend (see billing/auth_tokens.py). Unset = the API refuses to start.
    admin_tokens: SecretStr | None = None
    #: Signs the console's session cookie; unset = a random key per process (log in again
    #: after a restart). Set it when several app processes serve the console.
    console_session_secret: SecretStr | None = None
    #: The timezone the console shows times in.
    console_timezone: str = "Europe/Moscow"
    #: Mark the session cookie Secure (serve the console over HTTPS). Turn it off only for
    #: local use over plain http (``BILLING_CONSOLE_HTTPS_ONLY=false``).
    console_https_only: bool = True
    #: Request bodies larger than this are refused with 413 before authentication.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Seconds an Idempotency-Key is remembered (per principal and endpoint); then it is new.
    idempotency_key_ttl: float = Field(default=86400.0, gt=0)

    #: One webhook endpoint from the settings (besides those added with ``billing webhooks
    #: add``): its URL and its Standard Webhooks secret (``whsec_`` + base64).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    #: Seconds a receiver has to answer one delivery.
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    #: Test mode: one clock stored in the database (``billing clock``) that every process
    #: reads; events carry ``livemode: false``. Never in production.
    test_mode: bool = False
    #: Testing only (the chaos run): this process's wall clock reads this many seconds
    #: ahead (negative: behind), as on a host whose clock drifted. Lease times stay on the
    #: database's clock. At most 400 days either way; never set in production.
    clock_offset_seconds: float = Field(default=0.0, ge=-400 * 86400.0, le=400 * 86400.0)
    #: ``invoice.upcoming`` is sent this long before each scheduled charge (``3d``, ``12h``);
    #: empty = never.
    invoice_upcoming_before: str | None = "3d"

    @field_validator("gateway_dialect", mode="before")
    @classmethod
    def _known_dialect(cls, value: object) -> Dialect:
        return parse_dialect(value)

    @field_validator("merchants")
    @classmethod
    def _merchant_names(cls, value: dict[str, MerchantAccount]) -> dict[str, MerchantAccount]:
        return check_merchants(value)

    def merchant_accounts(self) -> dict[str, MerchantAccount]:
        """Every merchant account by name, ``default`` (the BILLING_GATEWAY_* settings) first."""
        default = MerchantAccount(
            url=self.gateway_url,
            dialect=self.gateway_dialect,
            username=self.gateway_username,
            password=self.gateway_password,
            token=self.gateway_token,
            rate_limit=self.gateway_rate_limit,
            two_phase=self.gateway_two_phase,
            fiscal_receipts=self.gateway_fiscal_receipts,
        )
        return {DEFAULT_ACCOUNT: default, **self.merchants}

    @field_validator(*OPTIONAL, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        fmt = value.strip().lower()
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format; use one of {', '.join(LOG_FORMATS)}")
        return fmt

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)
        return value

    @field_validator("console_session_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_session_secret(value.get_secret_value())
        return value

    @field_validator("admin_tokens")
    @classmethod
    def _tokens_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from billing.auth_tokens import TokenConfig

            try:
                TokenConfig.parse(value.get_secret_value())
            except ConfigurationError as exc:  # the message never echoes a token
                message = str(exc).removeprefix("BILLING_ADMIN_TOKENS").strip(" :")
                raise ValueError(message) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        check_database_url(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from billing.domain.webhooks import secret_key

            secret_key(value.get_secret_value())  # its ValueError names no secret
        return value

    @field_validator("invoice_upcoming_before", mode="before")
    @classmethod
    def _upcoming_off(cls, value: object) -> object:
        return None if value in ("", "0", "off", "none") else value

    @field_validator("invoice_upcoming_before")
    @classmethod
    def _upcoming_duration(cls, value: str | None) -> str | None:
        if value is not None:
            from billing.domain.durations import parse_duration

            try:
                parse_duration(value)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _webhook_pair(self) -> Settings:
        if (self.webhook_url is None) != (self.webhook_secret is None):
            raise ValueError(
                "BILLING_WEBHOOK_URL and BILLING_WEBHOOK_SECRET are set together or not at all"
            )
        return self

    @field_validator("callback_public_key")
    @classmethod
    def _pem_or_path(cls, value: str | None) -> str | None:
        if value is None or "-----BEGIN" in value:
            return value
        path = Path(value)
        if not path.is_file():
            raise ValueError("must be a PEM public key or the path to one")
        return path.read_text()

    @field_validator("console_timezone", "gateway_banking_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown timezone; use an IANA name like Europe/Moscow") from None
        return value

    @field_validator("dunning_policy")
    @classmethod
    def _policy_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def longest_gateway_call(self) -> float:
        """Seconds from the start of a gateway call until it has certainly ended."""
        return (
            self.gateway_pool_timeout
            + self.gateway_connect_timeout
            + self.gateway_write_timeout
            + self.gateway_read_timeout
        )

    @model_validator(mode="after")
    def _reconcile_after_timeouts(self) -> Settings:
        # An unfinished send is settled by order status only once the HTTP call has
        # certainly ended; otherwise "order not found" could be read too early. A worker
        # starts the call (after any rate-limit wait) only while at least the longest call
        # is left of the send's lease, so the lease must leave room for a wait and a call.
        longest_call = self.longest_gateway_call
        if self.gateway_rate_limit or any(m.rate_limit for m in self.merchants.values()):
            longest_call += self.gateway_rate_limit_max_wait  # waiting for a slot while "sending"
        if self.stale_sending_after <= longest_call:
            raise ValueError(
                "stale_sending_after must be longer than the longest gateway call "
                f"({longest_call:g}s: pool + connect + write + read timeouts + rate-limit wait)"
            )
        return self

    @model_validator(mode="after")
    def _one_clock_in_test_mode(self) -> Settings:
        if self.test_mode and self.clock_offset_seconds:
            raise ValueError(
                "clock_offset_seconds cannot be combined with test_mode (the test clock is "
                "the one clock every process reads)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        dotenv = known_dotenv_values(settings_cls, Path(ENV_FILE))
        if dotenv:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=dotenv))
        config_file = os.environ.get("BILLING_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read settings; any problem becomes one clear ConfigurationError line. An unknown
    ``BILLING_*`` variable (environment or ``.env``) is reported on stderr as a warning
    naming the closest known setting."""
    for line in unknown_variable_warnings([*os.environ, *dotenv_names(Path(ENV_FILE))]):
        if line not in _warned:
            _warned.add(line)
            print(f"warning: {line}", file=sys.stderr)
    config_file = os.environ.get("BILLING_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise ConfigurationError(f"BILLING_CONFIG_FILE: no such file: {config_file}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "__".join(str(part) for part in first["loc"])
        name = f"BILLING_{field.upper()}" if field else "settings"
        raise ConfigurationError(f"invalid setting {name}: {first['msg']}") from None
    except Exception as exc:  # TOML syntax errors and the like, from pydantic-settings
        raise ConfigurationError(f"cannot read settings: {exc}") from None


_warned: set[str] = set()


def unknown_variable_warnings(names: Iterable[str]) -> list[str]:
    """One line per ``BILLING_*`` name that is no setting, naming the closest one."""
    return unknown_names(names, Settings.model_fields)
