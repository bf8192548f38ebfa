"""``invoice.upcoming``: a notice a configurable time (default 3 days) before each charge.

Decides which subscriptions get the notice now: billable ones whose next charge is due
within the lead time and that have not had it for that due time (``upcoming_notices``,
one row per subscription and due time, so a notice is never sent twice for one charge,
whatever the number of schedulers). Must never charge or open an invoice: it only writes
the notice and its event, in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select

from billing.domain.model import BILLABLE_STATUSES
from billing.services.outbox import Staged, stage_public
from billing.services.ports import Clock, system_clock
from billing.storage.bulk import bulk_insert
from billing.storage.database import Database
from billing.storage.outbox_tables import UpcomingNotice
from billing.storage.tables import Subscription


class UpcomingNotices:
    def __init__(
        self,
        db: Database,
        lead: timedelta | None,
        *,
        clock: Clock = system_clock,
        batch_size: int = 500,
    ) -> None:
        self.db = db
        self.lead = lead
        self.clock = clock
        self.batch_size = batch_size

    def run_pass(self) -> int:
        """Send the notices that are due now; returns how many."""
        if self.lead is None:
            return 0
        now = self.clock()
        sent = 0
        while True:
            count = self._batch(now, now + self.lead)
            sent += count
            if count < self.batch_size:
                return sent

    def _batch(self, now: datetime, horizon: datetime) -> int:
        noticed = exists().where(
            and_(
                UpcomingNotice.subscription_id == Subscription.id,
                UpcomingNotice.due_at == Subscription.next_charge_at,
            )
        )
        with self.db.transaction() as session:
            due = session.execute(
                select(Subscription.id, Subscription.next_charge_at)
                .where(
                    Subscription.status.in_([s.value for s in BILLABLE_STATUSES]),
                    Subscription.next_charge_at > now,
                    Subscription.next_charge_at <= horizon,
                    ~noticed,
                )
                .order_by(Subscription.id)
                .limit(self.batch_size)
            ).all()
            rows = [{"subscription_id": s, "due_at": at, "sent_at": now} for s, at in due]
            inserted = bulk_insert(
                session,
                UpcomingNotice,
                rows,
                returning=("subscription_id", "due_at"),
                conflict_columns=("subscription_id", "due_at"),
            )
            for sub_id, due_at in inserted:
                stage_public(
                    session,
                    Staged(
                        "invoice.upcoming",
                        now,
                        f"the next charge is due at {due_at:%Y-%m-%d %H:%M} UTC",
                        subscription_id=sub_id,
                        due_at=due_at,
                        actor="scheduler",
                    ),
                )
        return len(due)
