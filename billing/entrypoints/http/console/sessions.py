"""Server-side console sessions: whether a session cookie still stands for a person.

The cookie carries only a random session id; the ``console_sessions`` row (keyed by the
id's SHA-256) says who logged in, with which token (a fingerprint, never the token), when
the session ends (fixed at login: activity never extends it) and whether it was revoked
(logout). :func:`session_verdict` is the pure decision; :class:`SessionStore` the storage.

Never: store or log a token or a session id in clear, extend a session past
``expires_at``, or accept a session whose token is no longer configured.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import delete, update

from billing.auth_tokens import token_fingerprint
from billing.storage.database import Database
from billing.storage.tables import ConsoleSession

__all__ = ["SESSION_LIFETIME", "SessionStore", "session_verdict", "token_fingerprint"]

#: How long a console login lasts, whatever the activity.
SESSION_LIFETIME = timedelta(hours=8)


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class SessionRecord:
    operator: str
    role: str
    token_fingerprint: str
    expires_at: datetime
    revoked_at: datetime | None


class _Named(Protocol):
    @property
    def name(self) -> str: ...


P = TypeVar("P", bound=_Named)


def session_verdict(
    record: SessionRecord | None,
    now: datetime,
    owner: Callable[[str], P | None],
) -> P | str:
    """The person a session stands for, or why it does not count (pure but for ``owner``).

    ``owner`` maps a token fingerprint to the person whose configured token has it now.
    """
    if record is None:
        return "unknown session"
    if record.revoked_at is not None:
        return "logged out"
    if now >= record.expires_at:
        return "expired"
    person = owner(record.token_fingerprint)
    if person is None:
        return "token no longer configured"
    if person.name != record.operator:
        return "token now belongs to someone else"
    return person


class SessionStore:
    """The ``console_sessions`` table (sync: call from a thread pool)."""

    def __init__(self, db: Database, *, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self.db = db
        self.lifetime = lifetime

    def open(self, now: datetime, *, operator: str, role: str, token: str) -> str:
        """Record a login; the returned random id goes into the cookie."""
        session_id = secrets.token_urlsafe(32)
        with self.db.transaction() as session:
            # Ended sessions are kept a day (for a look after an incident), then dropped.
            session.execute(
                delete(ConsoleSession).where(ConsoleSession.expires_at < now - timedelta(days=1))
            )
            session.add(
                ConsoleSession(
                    id_hash=_id_hash(session_id),
                    operator=operator,
                    role=role,
                    token_fingerprint=token_fingerprint(token),
                    created_at=now,
                    expires_at=now + self.lifetime,
                    revoked_at=None,
                )
            )
        return session_id

    def find(self, session_id: str) -> SessionRecord | None:
        with self.db.transaction() as session:
            row = session.get(ConsoleSession, _id_hash(session_id))
            if row is None:
                return None
            return SessionRecord(
                operator=row.operator,
                role=row.role,
                token_fingerprint=row.token_fingerprint,
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
            )

    def revoke(self, session_id: str, now: datetime) -> None:
        """End a session for good (logout): its cookie is refused from now on."""
        with self.db.transaction() as session:
            session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id_hash == _id_hash(session_id))
                .where(ConsoleSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
