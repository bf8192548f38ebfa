"""The database schema (SQLAlchemy 2 typed declarative models).

Money is integer minor units; currency a numeric ISO 4217 code; times UTC.
The UNIQUE constraints are the last line against double scheduling and double charging:
one invoice per (subscription, period) and per (subscription, local wall-clock period);
one orderNumber per attempt, never reused; at most one in-flight attempt per invoice
(partial unique index).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from billing.storage.types import BigId, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

IN_FLIGHT_SQL = "state IN ('pending', 'sending', 'unknown')"
NEEDS_REFUND_SQL = "needs_refund"
#: The partial indexes the scheduler's claims read (0016). Literal, as the migration is:
#: tests/unit/storage/test_claim_indexes.py holds them to billing.domain.model's sets (a
#: query whose predicate the index's does not imply silently falls back to a full sort).
BILLABLE_SQL = "status IN ('active', 'held', 'needs_payment_method', 'past_due')"
MANUAL_IN_FLIGHT_SQL = "trigger = 'manual' AND " + IN_FLIGHT_SQL
PENDING_SQL = "state = 'pending'"
UNDISPATCHED_SQL = "dispatched_at IS NULL"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(255), index=True)
    binding_id: Mapped[str] = mapped_column(String(255))
    #: Increased each time a new binding is set; dunning counts per binding.
    binding_version: Mapped[int] = mapped_column(Integer, default=1)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="643")
    description: Mapped[str | None] = mapped_column(String(512))
    schedule: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    next_charge_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The status a paused subscription returns to on resume, and when it was paused (0003).
    paused_from: Mapped[str | None] = mapped_column(String(32))
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A cancellation requested by an operator or the backend takes effect at this time
    #: (the end of the current period). Dunning's ``cancel_at`` is separate on purpose (0003).
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The merchant account charged (settings ``[merchants.<name>]``; set once, at creation).
    merchant_account: Mapped[str] = mapped_column(
        String(32), default="default", server_default="default"
    )
    #: Where the acquirer's fiscalization sends the receipt (54-FZ); optional, never logged.
    customer_email: Mapped[str | None] = mapped_column(String(254))
    customer_phone: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_subscriptions_due", "status", "next_charge_at"),
        # The scheduler's claim: due billable subscriptions in (next_charge_at, id) order,
        # paged by that key (a month-start minute has every row at the same instant).
        Index(
            "ix_subscriptions_billable_due",
            "next_charge_at",
            "id",
            postgresql_where=text(BILLABLE_SQL),
            sqlite_where=text(BILLABLE_SQL),
        ),
        Index("ix_subscriptions_cancel_at", "cancel_at"),
    )


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    #: The scheduled due time that opened this billing period (UTC).
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The period on the customer's wall clock (billing.domain.periods.local_period_key), e.g.
    #: "2026-10-25T02:30": one local period never opens two invoices (0004; NULL before).
    local_period: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    #: When the next automatic charge attempt is due; NULL = none planned.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    last_category: Mapped[str | None] = mapped_column(String(32))
    last_reason: Mapped[str | None] = mapped_column(String(64))
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("subscription_id", "period_start", name="uq_invoices_period"),
        UniqueConstraint("subscription_id", "local_period", name="uq_invoices_local_period"),
        Index("ix_invoices_due", "status", "next_attempt_at", "id"),
    )


class ChargeAttempt(Base):
    __tablename__ = "charge_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    attempt_number: Mapped[int] = mapped_column(Integer)
    #: Stored before the call; sent as recurrentPayment.do orderNumber; never reused.
    order_number: Mapped[str] = mapped_column(String(32), unique=True)
    trigger: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    binding_version: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    gateway_order_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(16))
    action_code: Mapped[int | None] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(512))
    #: Number of order-status checks made to settle an unknown outcome.
    status_checks: Mapped[int] = mapped_column(Integer, default=0)
    #: Set when this attempt took money for an invoice that was already paid.
    needs_refund: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Two-phase: deposit.do stored before the call (sent at most once automatically) and
    #: what came of it (:class:`billing.domain.two_phase.CaptureResult`).
    capture_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    capture_result: Mapped[str | None] = mapped_column(String(16))
    #: A stuck order: when decline.do was last sent for it.
    decline_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A status-check message for this attempt is waiting in the queue (set by the scheduler
    #: when it enqueues one, cleared by the worker that takes it): not sent again meanwhile.
    check_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt_number", name="uq_charge_attempts_number"),
        Index(
            "uq_charge_attempts_one_in_flight",
            "invoice_id",
            unique=True,
            postgresql_where=text(IN_FLIGHT_SQL),
            sqlite_where=text(IN_FLIGHT_SQL),
        ),
        Index("ix_charge_attempts_state", "state", "next_check_at"),
        # The scheduler's "an operator's charge is in flight" test, once per due invoice.
        Index(
            "ix_charge_attempts_manual_in_flight",
            "invoice_id",
            postgresql_where=text(MANUAL_IN_FLIGHT_SQL),
            sqlite_where=text(MANUAL_IN_FLIGHT_SQL),
        ),
        # Pending attempts never enqueued (or whose message was lost), without reading the
        # month-start backlog of pending ones.
        Index(
            "ix_charge_attempts_pending_enqueued",
            "enqueued_at",
            postgresql_where=text(PENDING_SQL),
            sqlite_where=text(PENDING_SQL),
        ),
        Index("ix_charge_attempts_gateway_order_id", "gateway_order_id"),
        # The metrics' "attempts needing a refund" count reads only the flagged rows.
        Index(
            "ix_charge_attempts_needs_refund",
            "needs_refund",
            postgresql_where=text(NEEDS_REFUND_SQL),
            sqlite_where=text(NEEDS_REFUND_SQL),
        ),
    )


class Event(Base):
    """Append-only log of every state change with its reason."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    subscription_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    attempt_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(48))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(64), default="system")


class GatewayCircuit(Base):
    """One row per merchant account: whether its charging is paused, and until when."""

    __tablename__ = "gateway_circuits"

    account: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="closed")
    reason: Mapped[str | None] = mapped_column(String(512))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    trips: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Refund(Base):
    """One refund (``refund.do``) or reversal (``reverse.do``) asked for by a person.

    The row and its ``external_refund_id`` are committed before the gateway is called, so
    a repeated request finds it instead of refunding twice. ``unknown`` means the call may
    have been processed (timeout): it is never reported as a success.
    """

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("charge_attempts.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    subscription_id: Mapped[int] = mapped_column(BigInteger)
    #: ``refund`` or ``reverse``.
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    external_refund_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: requested / succeeded / failed / unknown
    state: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(String(512))
    http_status: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """A creating call's ``Idempotency-Key``: the same key and body get the stored answer."""

    __tablename__ = "idempotency_keys"
    #: A key is scoped per principal (the token's name, the console's operator, ``cli:login``)
    #: and endpoint, as Stripe does: two callers' keys never collide.
    __table_args__ = (
        UniqueConstraint("principal", "endpoint", "key", name="uq_idempotency_keys_scope"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(64), default="", server_default="")
    key: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    #: NULL while the request is being processed.
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A console login: the cookie carries a random id, this row whether it still counts.

    ``id_hash`` is the SHA-256 of that id (a database reader cannot forge a cookie);
    ``token_fingerprint`` ties the session to the token it logged in with, so removing
    the token from the settings ends it; ``expires_at`` is fixed at login (no extension).
    """

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Heartbeat(Base):
    """A live process: the scheduler and each worker process write their row every few
    seconds (``beat_at``); ``detail`` is JSON (the scheduler's last pass report)."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    detail: Mapped[str | None] = mapped_column(Text)
