"""Redaction of the gateway's secrets: what text, JSON and log records may keep.

Pure functions over a :class:`Secrets` value: the configured password and token (and any
other secret the caller adds) become ``***``; a known bindingId becomes ``…ab12``. Each
secret is also found in the forms a gateway or a library echoes it in: JSON-escaped and
URL-encoded. Values named like a secret (``password=…``, ``"token": "…"``,
``bindingId=…``) are masked whatever they are, so an echo of a value we did not send is
covered too. :class:`RedactingFilter` applies the same to every log record.

Never: return, store or log a configured secret or a full bindingId; raise on odd input.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, quote_plus

from billing.domain.model import mask_binding

MASK: Final = "***"
_SECRET_KEYS: Final = frozenset({"password", "token"})
_BINDING_KEYS: Final = frozenset({"bindingid"})
#: ``password=…``, ``"token": "…"``, ``bindingId: …`` in free text (query strings, JSON, logs).
_NAMED_VALUE: Final = re.compile(
    r"""(?P<key>\b(?:password|token|bindingId|binding_id)\b)"""
    r"""(?P<sep>["']?\s*[:=]\s*["']?)"""
    r"""(?P<value>[^"'&\s,;}<>\]]+)""",
    re.IGNORECASE,
)


#: Every match of ``_NAMED_VALUE`` in ASCII text contains one of these (lowercased).
_NAMED_KEYS: Final = ("password", "token", "binding")


def _variants(value: str) -> set[str]:
    """The forms a value is echoed in: as is, JSON-escaped, URL-encoded (both styles)."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {quote(value, safe=""), quote_plus(value), quote(value)}
    return {form for form in forms if form}


@dataclass(frozen=True)
class Secrets:
    """What must never be kept: ``(value, replacement)`` pairs, longest value first."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls, *, secrets: Iterable[str | None] = (), bindings: Iterable[str | None] = ()
    ) -> Secrets:
        pairs: dict[str, str] = {}
        for secret in secrets:
            if secret:
                for form in _variants(secret):
                    pairs[form] = MASK
        for binding in bindings:
            if binding:
                for form in _variants(binding):
                    pairs.setdefault(form, mask_binding(binding))
        ordered = sorted(pairs.items(), key=lambda item: len(item[0]), reverse=True)
        return cls(tuple(ordered))

    def __add__(self, other: Secrets) -> Secrets:
        merged = dict(self.pairs) | dict(other.pairs)
        return Secrets(tuple(sorted(merged.items(), key=lambda item: len(item[0]), reverse=True)))

    def __repr__(self) -> str:
        return f"Secrets({len(self.pairs)} values)"


def _named(match: re.Match[str]) -> str:
    key, sep, value = match.group("key"), match.group("sep"), match.group("value")
    if value == MASK or value.startswith("…"):
        return match.group(0)
    masked = mask_binding(value) if "binding" in key.lower() else MASK
    return f"{key}{sep}{masked}"


def redact_text(text: str, secrets: Secrets) -> str:
    """``text`` with every known secret (any echoed form) and every named secret masked."""
    for value, replacement in secrets.pairs:
        if value in text:
            text = text.replace(value, replacement)
    if text.isascii() and not any(key in text.lower() for key in _NAMED_KEYS):
        return text  # no name the pattern looks for (checked per charge: keep it cheap)
    return _NAMED_VALUE.sub(_named, text)


def redact_cut(text: str, secrets: Secrets, limit: int) -> str:
    """Redact, then cut to ``limit``: a secret straddling the cut cannot leave a prefix."""
    return redact_text(text[: limit * 20], secrets)[:limit]


def redact_json(body: dict[str, Any], secrets: Secrets) -> None:
    """Mask in place, by key (``password``, ``token``, ``bindingId`` at any depth) and inside
    every string. Iterative, so deep nesting cannot overflow the stack."""
    stack: list[dict[Any, Any] | list[Any]] = [body]
    while stack:
        node = stack.pop()
        keys: Iterable[Any] = list(node) if isinstance(node, dict) else range(len(node))
        for key in keys:
            value = node[key]
            lowered = key.lower() if isinstance(key, str) else ""
            if isinstance(value, str):
                if lowered in _SECRET_KEYS:
                    node[key] = MASK
                elif lowered in _BINDING_KEYS:
                    node[key] = mask_binding(value)
                else:
                    node[key] = redact_text(value, secrets)
            elif isinstance(value, dict | list):
                stack.append(value)


class RedactingFilter(logging.Filter):
    """Redacts every record passing a handler: message, arguments, exception text and
    string extras. Secrets may be added later (:meth:`remember`), from any thread."""

    def __init__(self, secrets: Secrets | None = None) -> None:
        super().__init__()
        self._secrets = secrets or Secrets()
        self._lock = threading.Lock()

    def remember(self, secrets: Secrets) -> None:
        with self._lock:
            self._secrets = self._secrets + secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact_text(message, secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, redact_text(value, secrets))
        return True


_STANDARD_ATTRS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
