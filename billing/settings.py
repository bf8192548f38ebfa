"""Settings from ``BILLING_*`` environment variables and an optional TOML file.

Precedence: explicit arguments > environment > TOML file (``BILLING_CONFIG_FILE``) > defaults.
Every mistake (a bad log level, a malformed Redis URL, an unwritable SQLite path, a weak
console session secret…) is refused here, before anything starts, as one line naming the
setting; a secret's value is never echoed.
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
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SESSION_SECRET_BYTES = 32
#: Values people paste from examples; refused as a console session secret whatever their length.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "secret", "password", "example", "test", "default"}
)


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
    #: Mark the session cookie Secure (serve the console over HTTPS). Turn it off only for
    #: local use over plain http (``BILLING_CONSOLE_HTTPS_ONLY=false``).
    console_https_only: bool = True
    #: Request bodies larger than this are refused with 413 before authentication.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Seconds an Idempotency-Key is remembered (per principal and endpoint); then it is new.
    idempotency_key_ttl: float = Field(default=86400.0, gt=0)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_redis_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)
        return value

    @field_validator("console_session_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("console_session_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_session_secret(value.get_secret_value())
        return value

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
        check_database_url(value)
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


# -- checks (pure but for the file-system look-ups of the SQLite path) -----------------------


def check_session_secret(secret: str) -> None:
    """Refuse a console session secret that is short, a known placeholder or one repeated
    character. The message never contains the secret."""
    hint = "generate one with: openssl rand -hex 32"
    lowered = secret.strip().lower()
    if lowered in PLACEHOLDER_SECRETS or any(
        lowered.startswith(p) for p in ("change-me", "changeme", "change_me")
    ):
        raise ValueError(f"is a placeholder value; {hint}")
    if len(set(secret)) <= 1:
        raise ValueError(f"is one character repeated; {hint}")
    if len(secret.encode("utf-8")) < MIN_SESSION_SECRET_BYTES:
        raise ValueError(f"must be at least {MIN_SESSION_SECRET_BYTES} bytes; {hint}")
    if len(set(secret)) < 8:
        raise ValueError(f"has too few distinct characters to be random; {hint}")


def check_redis_url(url: str) -> None:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL with a host (or path) and a numeric db."""
    from urllib.parse import urlsplit

    example = "use redis://host:6379/0"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"is not a valid URL; {example}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"must start with redis://, rediss:// or unix://; {example}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL needs the socket path, e.g. unix:///run/redis.sock")
        return
    if not parts.hostname:
        raise ValueError(f"has no host; {example}")
    if port == 0:
        raise ValueError(f"has port 0; {example}")
    db = parts.path.strip("/")
    if db and not (db.isascii() and db.isdigit()):
        raise ValueError(f"the database after the host must be a number; {example}")


def check_database_url(url: str) -> None:
    """A parseable URL; for a SQLite file, a directory that exists and can be written."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError("is not a valid database URL") from None
    if not parsed.drivername.startswith("sqlite"):
        return
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"no such directory for the SQLite file: {folder}")
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        raise ValueError(f"cannot write the SQLite file: {path}")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create the SQLite file in {folder} (not writable)")
