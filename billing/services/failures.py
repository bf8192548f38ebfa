"""Which failures an operator may name to select invoices (``billing retry --all``).

Decides whether a ``--category`` value is a failure billing can actually record on an
invoice: a retryable outcome category (``soft_decline``, ``transient``,
``merchant_config``: the categories of invoices still charged automatically, on
active and past_due subscriptions) or one of the reason slugs the classification produces
(``insufficient_funds``, ``system_error``...). It must never accept a word that can
match nothing (a typo would silently select nobody) nor categories whose invoices are not
retried by hand in bulk (``paid``, ``unknown``: its charge may still go through,
``do_not_retry``; hard declines and held subscriptions wait for a new card or an
operator, one by one). Pure data, no I/O.
"""

from __future__ import annotations

from typing import Final

from billing.domain.model import Category
from billing.errors import ValidationError
from billing.gateway import codes

__all__ = ["BULK_RETRY_CATEGORIES", "KNOWN_REASONS", "clean_failure_filter"]

#: Categories a bulk retry may select, in the order the error message lists them.
BULK_RETRY_CATEGORIES: Final = (
    Category.TRANSIENT,
    Category.SOFT_DECLINE,
    Category.MERCHANT_CONFIG,
)

#: Reasons that never come from the code tables (transport failures, our own verdicts).
_OTHER_REASONS: Final = frozenset(
    {
        "connect_failed",
        "read_timeout",
        "connection_lost",
        "http_5xx",
        "http_retryable",
        "http_4xx",
        "http_redirect",
        "not_json",
        "not_received",
        "transient_cap_reached",
    }
)


def _table_reasons() -> frozenset[str]:
    found = {rule.reason for rule in codes.PAYMENT_ERROR_CODES.values()}
    found.update(rule.reason for _, rule in codes.ERROR_TEXT_RULES)
    found.update(rule.reason for rule in codes.STATUS_ERROR_CODES.values())
    for group in codes.ACTION_CODE_GROUPS.values():
        found.update(group.values())
    found.add(codes.DECLINED_UNKNOWN_REASON.reason)
    return frozenset(found)


#: Every reason slug an invoice's ``last_reason`` can hold for a retryable failure.
KNOWN_REASONS: Final = _table_reasons() | _OTHER_REASONS


def clean_failure_filter(value: str) -> str:
    """The lower-cased category or reason; ValidationError listing the valid categories."""
    text = value.strip().lower()
    if text in {category.value for category in BULK_RETRY_CATEGORIES} or text in KNOWN_REASONS:
        return text
    valid = ", ".join(category.value for category in BULK_RETRY_CATEGORIES)
    raise ValidationError(
        f"unknown failure category {value!r}: give one of {valid}, "
        "or a failure reason such as insufficient_funds or system_error"
    )
