"""The logging context (which subscription, invoice, attempt and order a line is about)
and the JSON log format (``BILLING_LOG_FORMAT=json``).

The context is a contextvar: the charging and reconciliation entry points open a scope
with :func:`log_context` and :func:`bind` the ids they learn; :class:`ContextFilter` copies
them onto every record logged inside the scope (each thread and each task has its own).
It must never hold a secret or a bindingId: only the four ids below are accepted, and the
redacting filter of :mod:`billing.gateway.redact` stays on the handlers whatever the format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

#: The only fields the context carries (a bindingId or a secret can never be bound).
CONTEXT_FIELDS = ("subscription_id", "invoice_id", "attempt_id", "order_number")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

#: None outside every scope: :func:`bind` then does nothing, so ids never outlive a scope.
_context: ContextVar[dict[str, object] | None] = ContextVar("billing_log_context", default=None)


def current() -> dict[str, object]:
    """The ids bound in the current scope (a copy; empty outside a scope)."""
    return dict(_context.get() or {})


def bind(**ids: object) -> None:
    """Add ids to the current scope (``None`` values are ignored; no scope, no effect)."""
    unknown = set(ids) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a logging context field: {', '.join(sorted(unknown))}")
    scope = _context.get()
    if scope is not None:
        _context.set({**scope, **{k: v for k, v in ids.items() if v is not None}})


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """A scope whose log lines carry ``ids`` (and whatever :func:`bind` adds inside it)."""
    token = _context.set(current())
    try:
        bind(**ids)
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (attributes named as in CONTEXT_FIELDS)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, process, message, the context ids
    and any ``extra`` fields."""
    formatter: logging.Formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )
    return formatter
