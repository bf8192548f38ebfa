"""Which public event (``subscription.paused``, ``invoice.paid`` …) an internal change is.

Decides: the public type of one internal ``events`` row from its kind and its from/to
states, and which kind of object (subscription, invoice, charge, refund, charging) the
event carries. Pure: no I/O, no clock. Must never invent an event for a change that is
not one a SaaS acts on (an attempt being created, a callback arriving): those map to None.
"""

from __future__ import annotations

from enum import StrEnum

#: Every public event type, in the order the README lists them.
EVENT_TYPES: tuple[str, ...] = (
    "subscription.created",
    "subscription.updated",
    "subscription.paused",
    "subscription.resumed",
    "subscription.past_due",
    "subscription.needs_payment_method",
    "subscription.suspended",
    "subscription.canceled",
    "subscription.recovered",
    "invoice.created",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.uncollectible",
    "invoice.voided",
    "invoice.upcoming",
    "charge.needs_operator",
    "charge.double_charge",
    "refund.succeeded",
    "refund.failed",
    "charging.paused",
    "charging.resumed",
)


class Subject(StrEnum):
    """The object an event's ``data`` shows."""

    SUBSCRIPTION = "subscription"
    INVOICE = "invoice"
    CHARGE = "charge"
    REFUND = "refund"
    CHARGING = "charging"


#: Statuses a subscription leaves when it recovers from dunning (or from a hold).
_DUNNING = frozenset({"past_due", "needs_payment_method", "suspended", "held"})
#: Status changes named after the status reached.
_REACHED = {
    "paused": "subscription.paused",
    "past_due": "subscription.past_due",
    "needs_payment_method": "subscription.needs_payment_method",
    "suspended": "subscription.suspended",
    "canceled": "subscription.canceled",
}
_BY_KIND = {
    "subscription_created": "subscription.created",
    "subscription_updated": "subscription.updated",
    "binding_changed": "subscription.updated",
    "cancel_scheduled": "subscription.updated",
    "cancel_unscheduled": "subscription.updated",
    "invoice_opened": "invoice.created",
    "invoice_paid": "invoice.paid",
    "attempt_declined": "invoice.payment_failed",
    "attempt_failed": "invoice.payment_failed",
    "invoice_uncollectible": "invoice.uncollectible",
    "invoice_void": "invoice.voided",
    "needs_operator": "charge.needs_operator",
    "double_charge": "charge.double_charge",
    "refund_succeeded": "refund.succeeded",
    "refund_failed": "refund.failed",
    "reverse_succeeded": "refund.succeeded",
    "reverse_failed": "refund.failed",
    "charging_paused": "charging.paused",
    "charging_resumed": "charging.resumed",
}


def public_type(kind: str, from_state: str | None, to_state: str | None) -> str | None:
    """The public event type of one internal change, or None when it is not public."""
    if kind == "subscription_status":
        return _status_change(from_state, to_state)
    found = _BY_KIND.get(kind)
    if kind == "charging_paused" and to_state == "closed":
        return "charging.resumed"
    return found


def _status_change(from_state: str | None, to_state: str | None) -> str | None:
    if to_state is None or from_state == to_state:
        return None
    if from_state == "paused" and to_state != "canceled":
        return "subscription.resumed"
    if to_state == "active":
        return "subscription.recovered" if from_state in _DUNNING else "subscription.updated"
    return _REACHED.get(to_state, "subscription.updated")


def subject_of(event_type: str) -> Subject:
    """What ``data`` shows for ``event_type`` (its prefix)."""
    return Subject(event_type.split(".", 1)[0])


def parse_types(text: str | None) -> tuple[str, ...]:
    """A comma-separated list of event types (``None``/empty = all); unknown ones raise
    ValueError with one clear line."""
    if text is None or not text.strip():
        return ()
    wanted = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return wanted
