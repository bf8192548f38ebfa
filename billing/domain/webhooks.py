"""Webhook signatures (Standard Webhooks) and when a failed delivery is tried again.

Decides: the ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` headers of one
delivery (``v1,`` + base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` under the
base64 key after ``whsec_``), the retry schedule (about three days of tries with backoff),
and when an endpoint that keeps failing is disabled. Pure: the clock is passed in. Must
never put the secret in a header, a message or an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
#: Delay before try n+1 after n failed tries (Standard Webhooks' schedule, stretched to
#: about three days): the delivery fails for good after the last one.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    *[timedelta(hours=10)] * 7,
)
#: An endpoint with no success for this long is disabled (and shown so to operators).
DISABLE_AFTER = timedelta(days=5)
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SendResult:
    """One HTTP try: the status (None when no answer came), why it failed, how long it took."""

    status: int | None
    error: str | None
    latency_ms: int


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret; ValueError (naming no secret) when malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if len(key) < 24:
        raise ValueError("a webhook secret must hold at least 24 random bytes")
    return key


def secret_from_bytes(raw: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }


def is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def next_try_at(tries: int, now: datetime) -> datetime | None:
    """When to try again after ``tries`` failed tries (None: give up)."""
    if tries < 1 or tries > len(RETRY_DELAYS):
        return None
    return now + RETRY_DELAYS[tries - 1]


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
