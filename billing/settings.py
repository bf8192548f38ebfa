"""Settings from ``BILLING_*`` environment variables and an optional TOML file.

Precedence: explicit arguments > environment > TOML file (``BILLING_CONFIG_FILE``) > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from billing.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///billing.db"


class Settings(BaseSettings):
    """Every knob of the service. Secrets are ``SecretStr``: they never print."""

    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="forbid", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None

    gateway_url: str = "http://127.0.0.1:8088/payment/rest"
    gateway_username: str = "sandbox"
    gateway_password: SecretStr = SecretStr("sandbox")
    gateway_token: SecretStr | None = None
    gateway_connect_timeout: float = Field(default=5.0, gt=0)
    gateway_read_timeout: float = Field(default=30.0, gt=0)
    gateway_write_timeout: float = Field(default=10.0, gt=0)
    #: Waiting for a free pooled connection (50 busy threads) before the call is "not sent".
    gateway_pool_timeout: float = Field(default=5.0, gt=0)
    gateway_max_connections: int = Field(default=50, ge=1)
    #: Global limit on gateway calls per second across all workers (Redis-backed); 0 = none.
    gateway_rate_limit: int = Field(default=0, ge=0)
    #: How long a call waits for a slot before giving up (a transient, never-sent failure).
    gateway_rate_limit_max_wait: float = Field(default=60.0, gt=0)

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
    #: Consecutive gateway outages (transient answers) before charging pauses for everyone.
    circuit_outage_threshold: int = Field(default=20, ge=1)
    log_level: str = "INFO"

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
    #: Mark the session cookie Secure (serve the console over HTTPS).
    console_https_only: bool = False

    @field_validator("admin_tokens", mode="before")
    @classmethod
    def _empty_tokens_are_unset(cls, value: object) -> object:
        return None if value == "" else value

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
        return value

    @field_validator("callback_secret", "callback_public_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("callback_public_key")
    @classmethod
    def _pem_or_path(cls, value: str | None) -> str | None:
        if value is None or "-----BEGIN" in value:
            return value
        path = Path(value)
        if not path.is_file():
            raise ValueError("must be a PEM public key or the path to one")
        return path.read_text()

    @field_validator("console_timezone")
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

    @model_validator(mode="after")
    def _reconcile_after_timeouts(self) -> Settings:
        # An unfinished send is settled by order status only once the HTTP call has
        # certainly ended; otherwise "order not found" could be read too early.
        longest_call = (
            self.gateway_pool_timeout
            + self.gateway_connect_timeout
            + self.gateway_write_timeout
            + self.gateway_read_timeout
        )
        if self.gateway_rate_limit:
            longest_call += self.gateway_rate_limit_max_wait  # waiting for a slot while "sending"
        if self.stale_sending_after <= longest_call:
            raise ValueError(
                "stale_sending_after must be longer than the longest gateway call "
                f"({longest_call:g}s: pool + connect + write + read timeouts + rate-limit wait)"
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
        config_file = os.environ.get("BILLING_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read settings; any problem becomes one clear ConfigurationError line."""
    config_file = os.environ.get("BILLING_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise ConfigurationError(f"BILLING_CONFIG_FILE: no such file: {config_file}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        name = f"BILLING_{field.upper()}" if field else "settings"
        raise ConfigurationError(f"invalid setting {name}: {first['msg']}") from None
    except Exception as exc:  # TOML syntax errors and the like, from pydantic-settings
        raise ConfigurationError(f"cannot read settings: {exc}") from None
