"""How a paid invoice reads once money went back: "refunded", "reversed" or "partly
refunded" instead of "paid". Pure.

It decides only the words people see (``display_status``); the stored invoice status stays
``paid``, because the charge did happen. It must never count a refund that did not succeed
(requested, failed or unknown), and never touch the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from billing.domain.model import InvoiceStatus
from billing.gateway.classify_action import RefundState


def display_status(invoice: dict[str, Any], refunds: Iterable[dict[str, Any]]) -> str:
    """The invoice's status in words, given the refund views of its subscription."""
    status = str(invoice["status"])
    if status != InvoiceStatus.PAID:
        return status
    done = [
        r
        for r in refunds
        if r.get("invoice_id") == invoice["id"] and r.get("state") == RefundState.SUCCEEDED
    ]
    returned = sum(int(r["amount"]) for r in done)
    if returned <= 0:
        return status
    if returned < int(invoice["amount"]):
        return "partly refunded"
    return "reversed" if all(r.get("kind") == "reverse" for r in done) else "refunded"


def with_display_status(view: dict[str, Any]) -> dict[str, Any]:
    """A subscription or invoice view whose invoices say how they ended up."""
    refunds = view.get("refunds", [])
    for invoice in view.get("invoices", []):
        invoice["display_status"] = display_status(invoice, refunds)
    if "attempt_count" in view:  # an invoice view itself
        view["display_status"] = display_status(view, refunds)
    return view
