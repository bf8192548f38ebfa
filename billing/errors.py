"""The one error tree of the project.

Every error the project raises on purpose derives from :class:`BillingError`.
Foreign exceptions (httpx, SQLAlchemy, redis) are wrapped only in adapters.
Messages never carry secrets or full binding ids.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error raised by billing on purpose."""

    #: A short machine-readable code, stable across releases.
    code: str = "billing_error"
    #: Whether repeating the same operation later may succeed.
    should_retry: bool = False

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message


class ConfigurationError(BillingError):
    """A setting or policy file is missing or invalid."""

    code = "configuration_error"


class ValidationError(BillingError):
    """Input given by a user or a caller is invalid; nothing was changed."""

    code = "invalid_input"


class NotFoundError(BillingError):
    """The subscription, invoice or attempt asked for does not exist."""

    code = "not_found"


class ConflictError(BillingError):
    """The action is not allowed in the current state (e.g. retrying a paid invoice)."""

    code = "conflict"


class ChargingPausedError(ConflictError):
    """Charging is paused for everyone by the circuit breaker."""

    code = "charging_paused"
    should_retry = True


class StorageError(BillingError):
    """The database could not be reached or refused the operation."""

    code = "storage_error"
    should_retry = True


class BrokerError(BillingError):
    """The message broker could not be reached."""

    code = "broker_error"
    should_retry = True


class GatewayError(BillingError):
    """The gateway client was used wrongly (bad settings, bad request data)."""

    code = "gateway_error"
