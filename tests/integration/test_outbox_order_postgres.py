"""The outbox under concurrent commits on PostgreSQL: a reader paging by id (the webhook
relay, ``GET /events?after=``) never skips an event that commits late, and each
subscription's ``sequence`` grows with the id, whatever order the transactions commit in."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select

from billing.domain.subscription import NewSubscription
from billing.services.actions.subscriptions import SubscriptionActions
from billing.services.outbox import Staged, stage_public
from billing.storage.database import Database
from billing.storage.outbox_tables import OutboxEvent
from tests.support.fakes import ManualClock

WRITERS, COMMITS = 6, 25


def test_a_reader_paging_by_id_sees_every_event_and_sequences_follow_ids(pg_url: str) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    db = Database(pg_url)
    actions = SubscriptionActions(db, clock=clock)
    subs = [
        int(
            actions.create(
                NewSubscription(
                    customer_id=f"c{n}", binding_id="approve-1", amount=100, schedule="0 3 1 * *"
                ),
                actor="crm",
                reason="signup",
            ).body["id"]
        )
        for n in range(3)
    ]
    done = threading.Event()
    seen: list[int] = []

    def linger(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO outbox_events"):
            time.sleep(random.random() / 100)  # between the insert and its commit

    event.listen(db.engine, "after_cursor_execute", linger)

    def write(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(COMMITS):
            with db.transaction() as session:
                for sub in rng.sample(subs, rng.randint(1, 3)):
                    stage_public(session, Staged("subscription.updated", clock(), "t", sub))
                time.sleep(rng.random() / 200)  # commit at a random moment

    def read() -> None:
        after = 0
        while True:
            finished = done.is_set()  # read once more after the writers are done
            with db.transaction() as session:
                ids = list(
                    session.scalars(
                        select(OutboxEvent.id)
                        .where(OutboxEvent.id > after)
                        .order_by(OutboxEvent.id)
                        .limit(7)
                    )
                )
            seen.extend(ids)
            after = ids[-1] if ids else after
            if finished and not ids:
                return

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    with db.transaction() as session:
        rows = session.execute(
            select(OutboxEvent.id, OutboxEvent.subscription_id, OutboxEvent.sequence).order_by(
                OutboxEvent.id
            )
        ).all()
    db.dispose()
    assert seen == [row[0] for row in rows]  # every event, once, in id order
    for sub in subs:
        sequences = [sequence for _, owner, sequence in rows if owner == sub]
        assert sequences == list(range(1, len(sequences) + 1))
