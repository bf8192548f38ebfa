"""The public events' schema: the outbox, per-subscription sequences, webhook endpoints,
their deliveries and every delivery try, and the test clock.

An ``outbox_events`` row is written in the same transaction as the change it describes
(billing.services.outbox); its ``id`` is the polling cursor and ``public_id`` the event id
a receiver de-duplicates on. Nothing here may delete or rewrite an event once written.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.storage.tables import UNDISPATCHED_SQL, Base
from billing.storage.types import BigId, UTCDateTime


class OutboxEvent(Base):
    """One public event, oldest first by ``id``."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(48), index=True)
    subscription_id: Mapped[int | None] = mapped_column(BigInteger)
    #: 1, 2, 3 … per subscription (NULL for events about no subscription).
    sequence: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    livemode: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The whole event as JSON, exactly as it is delivered and listed.
    payload: Mapped[str] = mapped_column(Text)
    #: Set once the dispatcher pass made its webhook deliveries.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Only the rows still to dispatch: a dispatched row leaves the index (its old entry is
    # dead), so the relay never walks the events it has already handled.
    __table_args__ = (
        Index(
            "ix_outbox_events_undispatched",
            "id",
            postgresql_where=text(UNDISPATCHED_SQL),
            sqlite_where=text(UNDISPATCHED_SQL),
        ),
    )


class EventSequence(Base):
    """The last sequence number given to one subscription's events."""

    __tablename__ = "event_sequences"

    subscription_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class UpcomingNotice(Base):
    """``invoice.upcoming`` was sent for this subscription's charge due at ``due_at``."""

    __tablename__ = "upcoming_notices"

    subscription_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(512))
    #: ``whsec_`` + base64 key (Standard Webhooks); shown once, at creation.
    secret: Mapped[str] = mapped_column(String(128))
    #: Comma-separated event types; empty = every type.
    event_types: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(512))
    #: When its deliveries started failing without a success since (NULL = healthy).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event for one endpoint: pending until a 2xx, or failed after the last retry."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id"))
    #: pending / succeeded / failed
    state: Mapped[str] = mapped_column(String(16))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_try_at"),)


class WebhookTry(Base):
    """One HTTP try of a delivery: status, latency and error, kept for operators."""

    __tablename__ = "webhook_tries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(512))


class TestClock(Base):
    """One row (id 1) in test mode: the time every process reads instead of the wall clock."""

    __tablename__ = "test_clock"
    __test__ = False  # not a pytest test class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
