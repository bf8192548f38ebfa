"""Checks of single setting values that need more than a type: a strong console session
secret, a well-formed Redis URL, a SQLite file that can be written. Pure functions raising
ValueError with a message that never repeats a secret; :mod:`billing.settings` calls them."""

from __future__ import annotations

import os
from pathlib import Path

MIN_SESSION_SECRET_BYTES = 32
#: Values people paste from examples; refused as a console session secret whatever their length.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "secret", "password", "example", "test", "default"}
)


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
