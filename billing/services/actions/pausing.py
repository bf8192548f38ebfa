"""Pause, resume and cancel (now or at the end of the period) a subscription.

A pause holds every attempt not yet sent, a cancel voids the open invoices; a charge already
at the gateway settles by itself. Every change records its actor and reason in the same
transaction. This module never calls the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.model import (
    InvoiceStatus,
    SubscriptionStatus,
)
from billing.domain.periods import next_due
from billing.errors import (
    ConflictError,
)
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.collection import release_next
from billing.services.holds import release_hold
from billing.services.lifecycle import (
    binding_changed_since,
    change_status,
    close_invoice,
    failing_invoices,
    has_in_flight,
    hold_pending,
    lock_subscription,
    rearm_withheld,
    sent_attempts,
)
from billing.services.ports import Clock, system_clock
from billing.services.read.views import (
    iso,
    subscription_summary,
)
from billing.storage.database import Database
from billing.storage.tables import (
    Invoice,
    Subscription,
)


@dataclass(frozen=True)
class PauseActions:
    """Pause, resume and cancel subscriptions."""

    db: Database
    clock: Clock = system_clock

    def pause(self, subscription_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """No new invoices, no charges until resumed. A charge already sent settles itself."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = lock_subscription(session, subscription_id)
            if sub.status in (SubscriptionStatus.PAUSED, SubscriptionStatus.CANCELED):
                raise ConflictError(f"subscription {subscription_id} is already {sub.status}")
            previous = sub.status
            held = hold_pending(session, sub.id, None, now, "subscription_paused", actor)
            sent = sent_attempts(session, sub.id)
            sub.paused_from, sub.paused_at = previous, now
            change_status(session, sub, SubscriptionStatus.PAUSED, now, reason, actor=actor)
            return subscription_summary(sub) | {
                "held_attempts": held,
                "charges_in_flight": sent,
            }

    def resume(self, subscription_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Back to what it was before the pause (active / past_due when no card problem).

        Periods that fell due while paused are not billed: the next charge is recomputed
        from now. On a subscription set to cancel at period end, resume undoes that.
        """
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = lock_subscription(session, subscription_id)
            if sub.status == SubscriptionStatus.HELD:
                retried = release_hold(session, sub, now, actor, reason)
                return subscription_summary(sub) | {"retried_invoices": retried}
            if sub.status != SubscriptionStatus.PAUSED:
                if sub.ends_at is not None and sub.status != SubscriptionStatus.CANCELED:
                    return self._unschedule_cancel(session, sub, now, actor, reason)
                raise ConflictError(
                    f"subscription {subscription_id} is {sub.status}, not paused "
                    "(and not set to cancel at period end)"
                )
            target = SubscriptionStatus(sub.paused_from or SubscriptionStatus.ACTIVE.value)
            waiting = (
                SubscriptionStatus.NEEDS_PAYMENT_METHOD,
                SubscriptionStatus.SUSPENDED,
                SubscriptionStatus.HELD,  # paused while held: still held; resume it again
            )
            paused_at = sub.paused_at or now
            new_card = target in waiting and binding_changed_since(session, sub.id, paused_at)
            if target in waiting and not new_card:
                if sub.cancel_at is not None:
                    sub.cancel_at += now - paused_at  # the pause does not eat the grace period
            else:
                failing = failing_invoices(session, sub.id)
                target = SubscriptionStatus.PAST_DUE if failing else SubscriptionStatus.ACTIVE
                sub.cancel_at = None
                if new_card:
                    for invoice in failing:
                        if not has_in_flight(session, invoice.id):
                            invoice.next_attempt_at = now
                            invoice.updated_at = now
                rearm_withheld(session, sub.id, now)
            if sub.next_charge_at is not None and sub.next_charge_at <= now:
                sub.next_charge_at = next_due(sub.schedule, sub.timezone, now)
            sub.paused_from = sub.paused_at = None
            why = reason + (" (a new card was set while paused)" if new_card else "")
            change_status(session, sub, target, now, why, actor=actor)
            release_next(session, sub, now, "resumed", actor=actor)  # an invoice that waited
            return subscription_summary(sub)

    def _unschedule_cancel(
        self, session: Session, sub: Subscription, now: datetime, actor: str, reason: str
    ) -> dict[str, Any]:
        ends_at = sub.ends_at
        assert ends_at is not None
        sub.next_charge_at = ends_at if ends_at > now else next_due(sub.schedule, sub.timezone, now)
        sub.ends_at = None
        sub.updated_at = now
        record_event(
            session,
            now,
            "cancel_unscheduled",
            f"{reason} (no longer canceled at {ends_at:%Y-%m-%d %H:%M} UTC)",
            subscription_id=sub.id,
            actor=actor,
        )
        return subscription_summary(sub)

    def cancel(
        self, subscription_id: int, *, actor: str, reason: str, at_period_end: bool = False
    ) -> dict[str, Any]:
        """Cancel now (open invoices become ``void``: nobody owes them) or at the end of the
        current period (no further period opens; the scheduler cancels at ``ends_at``)."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            sub = lock_subscription(session, subscription_id)
            if sub.status == SubscriptionStatus.CANCELED:
                raise ConflictError(f"subscription {subscription_id} is already canceled")
            if at_period_end:
                return self._schedule_cancel(session, sub, now, actor, reason)
            held = hold_pending(session, sub.id, None, now, "subscription_canceled", actor)
            sent = sent_attempts(session, sub.id)
            voided = []
            for invoice in session.scalars(
                select(Invoice)
                .where(Invoice.subscription_id == sub.id, Invoice.status == InvoiceStatus.OPEN)
                .order_by(Invoice.id)
                .with_for_update()
            ):
                close_invoice(session, invoice, InvoiceStatus.VOID, now, actor, reason)
                voided.append(invoice.id)
            change_status(session, sub, SubscriptionStatus.CANCELED, now, reason, actor=actor)
            sub.next_charge_at = sub.cancel_at = sub.ends_at = None
            sub.paused_from = sub.paused_at = None
            return subscription_summary(sub) | {
                "voided_invoices": voided,
                "held_attempts": held,
                # A charge already sent settles by itself; if it took money for a voided
                # invoice, charging flags the attempt ``needs_refund``.
                "charges_in_flight": sent,
            }

    def _schedule_cancel(
        self, session: Session, sub: Subscription, now: datetime, actor: str, reason: str
    ) -> dict[str, Any]:
        if sub.ends_at is not None:
            raise ConflictError(
                f"subscription {sub.id} is already set to cancel at {iso(sub.ends_at)}"
            )
        if sub.status in (SubscriptionStatus.PAUSED, SubscriptionStatus.SUSPENDED):
            raise ConflictError(
                f"subscription {sub.id} is {sub.status} and opens no new periods: "
                "cancel it now instead"
            )
        if sub.next_charge_at is None:
            raise ConflictError(f"subscription {sub.id} has no next period to end before")
        sub.ends_at = sub.next_charge_at
        sub.next_charge_at = None  # no further period opens
        sub.updated_at = now
        record_event(
            session,
            now,
            "cancel_scheduled",
            f"{reason} (cancels at the end of the period, {sub.ends_at:%Y-%m-%d %H:%M} UTC)",
            subscription_id=sub.id,
            actor=actor,
        )
        return subscription_summary(sub)
