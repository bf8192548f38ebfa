"""Bearer tokens of the admin API: who may read, act, or drive subscriptions.

``BILLING_ADMIN_TOKENS`` is a comma-separated list of ``name:role:token`` entries::

    BILLING_ADMIN_TOKENS="anna:operator:9f2c…,crm:backend:51ab…,grafana:viewer:77de…"

* ``name`` (letters, digits, ``.``, ``_``, ``-``; at most 48) is what the audit log records
  as the actor of every change made with that token; ``system``, ``scheduler`` and
  ``gateway`` are reserved for the machine's own entries, so a person never hides among them;
* ``role`` is ``viewer`` (read only), ``operator`` (read and every action, refunds and
  retries included) or ``backend`` (the SaaS backend: read, and create / update / set the
  binding of / pause / resume / cancel subscriptions);
* ``token`` is at least 24 characters with no spaces or commas (``openssl rand -hex 32``).

Tokens are compared in constant time against every configured token (no early exit),
never logged, and never shown by ``repr``. This module imports no web framework: settings
checks ``BILLING_ADMIN_TOKENS`` with it, and ``billing.entrypoints.http`` (the admin API
and the console) authenticates with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum

from billing.errors import ConfigurationError

MIN_TOKEN_LENGTH = 24
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,48}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces
#: Actor names the service itself writes in the audit log (any case).
RESERVED_NAMES = frozenset({"system", "scheduler", "gateway"})
_FINGERPRINT_CONTEXT = b"billing-admin-token-fingerprint:"


def token_fingerprint(token: str) -> str:
    """A stable, one-way fingerprint of a token (SHA-256, domain-separated): what a console
    session stores to know, later, whether its token is still configured."""
    data = _FINGERPRINT_CONTEXT + token.encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    BACKEND = "backend"


#: Who may call what.
READ_ROLES = frozenset({Role.VIEWER, Role.OPERATOR, Role.BACKEND})
LIFECYCLE_ROLES = frozenset({Role.OPERATOR, Role.BACKEND})
MONEY_ROLES = frozenset({Role.OPERATOR})


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid token."""

    name: str
    role: Role


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    token: bytes = field(repr=False)


@dataclass(frozen=True)
class TokenConfig:
    """The configured tokens. ``repr`` shows names and roles only."""

    entries: tuple[_Entry, ...] = ()

    def __repr__(self) -> str:
        shown = ", ".join(f"{e.principal.name}:{e.principal.role}" for e in self.entries)
        return f"TokenConfig({shown})"

    def __bool__(self) -> bool:
        return bool(self.entries)

    @classmethod
    def parse(cls, text: str) -> TokenConfig:
        """Read ``name:role:token,…``; raise ConfigurationError (never echoing a token)."""
        entries: list[_Entry] = []
        names: set[str] = set()
        tokens: set[str] = set()
        for position, raw in enumerate(text.split(","), start=1):
            item = raw.strip()
            if not item:
                continue
            parts = item.split(":", 2)
            if len(parts) != 3:
                raise ConfigurationError(
                    f"BILLING_ADMIN_TOKENS entry {position} is not name:role:token"
                )
            name, role, token = (part.strip() for part in parts)
            if not _NAME.match(name):
                raise ConfigurationError(
                    f"BILLING_ADMIN_TOKENS entry {position}: the name must be 1 to 48 letters, "
                    "digits, '.', '_' or '-'"
                )
            if name.lower() in RESERVED_NAMES:
                raise ConfigurationError(
                    f"BILLING_ADMIN_TOKENS entry {position}: the name {name} is reserved for "
                    "the service's own audit entries; choose a person's or a system's own name"
                )
            if role not in {r.value for r in Role}:
                choices = ", ".join(r.value for r in Role)
                raise ConfigurationError(
                    f"BILLING_ADMIN_TOKENS entry {position} ({name}): unknown role; "
                    f"choose one of {choices}"
                )
            if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.match(token):
                raise ConfigurationError(
                    f"BILLING_ADMIN_TOKENS entry {position} ({name}): the token must be at least "
                    f"{MIN_TOKEN_LENGTH} printable characters without spaces or commas"
                )
            if name in names:
                raise ConfigurationError(f"BILLING_ADMIN_TOKENS: the name {name} is given twice")
            if token in tokens:
                raise ConfigurationError(
                    f"BILLING_ADMIN_TOKENS entry {position} ({name}): the same token is given "
                    "to another name"
                )
            names.add(name)
            tokens.add(token)
            entries.append(_Entry(Principal(name, Role(role)), token.encode()))
        return cls(tuple(entries))

    def by_fingerprint(self, fingerprint: str) -> Principal | None:
        """The principal whose configured token has this fingerprint, or None (constant time)."""
        given = fingerprint.encode("ascii", "replace")
        found: Principal | None = None
        for entry in self.entries:  # every entry is compared: no early exit
            mine = token_fingerprint(entry.token.decode("utf-8", "surrogateescape")).encode()
            if hmac.compare_digest(given, mine):
                found = entry.principal
        return found

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal whose token this is, or None. Constant time in the token."""
        if not token:
            return None
        given = token.encode("utf-8", "surrogateescape")
        found: Principal | None = None
        for entry in self.entries:  # every entry is compared: no early exit
            if hmac.compare_digest(given, entry.token):
                found = entry.principal
        return found
