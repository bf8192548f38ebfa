"""Idempotency-Key handling for creating calls (create a subscription, refund).

It decides whether a request with a key is new, a replay of the same request (answer with
the first response), or a misuse (the same key for another request: refused). Keys are
scoped per principal and endpoint, and expire (``DEFAULT_TTL``, the setting
``BILLING_IDEMPOTENCY_KEY_TTL``), as Stripe does: after that the key is new again. It must
never commit by itself: the key is stored in the caller's transaction with the change it
guards.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.errors import ConflictError, ValidationError
from billing.storage.tables import IdempotencyKey

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
DEFAULT_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Stored:
    """A creating call's answer, and whether it was replayed for a repeated Idempotency-Key."""

    body: dict[str, Any]
    replayed: bool = False


def request_hash(endpoint: str, payload: dict[str, Any]) -> str:
    text = json.dumps({"endpoint": endpoint, "payload": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
        )
    return key


def claim_key(
    session: Session,
    key: str,
    endpoint: str,
    request_hash: str,
    *,
    principal: str,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> IdempotencyKey | None:
    """The earlier request with this key from this principal on this endpoint, or None (then
    the caller stores a new one). An expired key is forgotten here, under its row lock."""
    earlier = session.scalars(
        select(IdempotencyKey)
        .where(
            IdempotencyKey.principal == principal,
            IdempotencyKey.endpoint == endpoint,
            IdempotencyKey.key == key,
        )
        .with_for_update()
    ).one_or_none()
    if earlier is not None and earlier.created_at <= now - ttl:
        session.delete(earlier)
        session.flush()
        return None
    if earlier is not None and earlier.request_hash != request_hash:
        raise ConflictError(
            "this Idempotency-Key was already used for a different request; "
            "use a new key for a new request"
        )
    return earlier
