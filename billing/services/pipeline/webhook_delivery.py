"""Webhook delivery: outbox rows become deliveries, deliveries are sent, tried again, given up.

Decides, per the pure rules of billing.domain.webhooks: which endpoints get an event (enabled
ones subscribed to its type), when a delivery is due and enqueued (after commit, and again
if its message was lost), what one try records (status, latency, error) and whether the
endpoint is disabled after days of failures. At least once: a receiver de-duplicates on the
event id (``webhook-id``). Must never hold a database transaction across the HTTP call,
block a charge (deliveries have their own queue), or log the secret or the body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from billing.domain import webhooks as rules
from billing.errors import BrokerError
from billing.observability.metrics import WEBHOOK_DELIVERIES
from billing.services.audit import record_event
from billing.services.ports import Clock, system_clock
from billing.services.webhook_ports import WebhookQueue, WebhookSender
from billing.storage.database import Database
from billing.storage.outbox_tables import (
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookTry,
)

log = logging.getLogger("billing.webhooks")
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
#: A delivery enqueued this long ago and still pending lost its message (a worker killed
#: mid-delivery, a broker restart): enqueue it again. The default; the bootstrap passes its own.
REQUEUE_AFTER = timedelta(minutes=2)
SETTINGS_ENDPOINT = "from settings (BILLING_WEBHOOK_URL)"


@dataclass(frozen=True)
class SettingsEndpoint:
    url: str
    secret: str


@dataclass
class DispatchReport:
    deliveries_created: int = 0
    enqueued: int = 0


class WebhookDelivering:
    def __init__(
        self,
        db: Database,
        sender: WebhookSender,
        queue: WebhookQueue,
        *,
        clock: Clock = system_clock,
        timeout: float = rules.TIMEOUT_SECONDS,
        settings_endpoint: SettingsEndpoint | None = None,
        batch_size: int = 500,
        requeue_after: timedelta = REQUEUE_AFTER,
    ) -> None:
        self.db = db
        self.requeue_after = requeue_after
        self.sender = sender
        self.queue = queue
        self.clock = clock
        self.timeout = timeout
        self.settings_endpoint = settings_endpoint
        self.batch_size = batch_size

    # -- the pass ---------------------------------------------------------------------------

    def run_pass(self) -> DispatchReport:
        """Turn new events into deliveries, then enqueue every delivery that is due."""
        now = self.clock()
        report = DispatchReport()
        if self.settings_endpoint is not None:
            self._ensure_settings_endpoint(now)
        after = 0
        while True:
            created, last = self._fan_out(now, after)
            report.deliveries_created += created
            if last is None:
                break
            after = last
        with self.db.transaction() as session:
            due = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.state == PENDING,
                        WebhookDelivery.next_try_at <= now,
                        or_(
                            WebhookDelivery.enqueued_at.is_(None),
                            WebhookDelivery.enqueued_at <= now - self.requeue_after,
                        ),
                    )
                    .order_by(WebhookDelivery.id)
                    .limit(self.batch_size)
                )
            )
            if due:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(due))
                    .values(enqueued_at=now)
                )
        try:
            self.queue.deliver(due)
            report.enqueued = len(due)
        except BrokerError as exc:  # found again by the next pass
            log.warning("cannot enqueue webhook deliveries: %s", exc)
        return report

    def _fan_out(self, now: datetime, after: int) -> tuple[int, int | None]:
        """Deliveries for the next batch of undispatched events after id ``after``; returns
        how many were made and the batch's last id (None: no full batch was left).

        Pages by id within a pass (ids become visible in id order, billing.services.outbox):
        a batch never re-reads what the pass already handled. An event another relay holds
        is skipped here and, should that relay roll back, read by the next pass."""
        with self.db.transaction() as session:
            query = (
                select(OutboxEvent.id, OutboxEvent.type)
                .where(OutboxEvent.dispatched_at.is_(None), OutboxEvent.id > after)
                .order_by(OutboxEvent.id)
                .limit(self.batch_size)
            )
            events = session.execute(self.db.skip_locked(query)).all()
            if not events:
                return 0, None
            endpoints = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
            ).all()
            created = 0
            for event_id, event_type in events:
                for endpoint in endpoints:
                    wanted = [t for t in endpoint.event_types.split(",") if t]
                    if wanted and event_type not in wanted:
                        continue
                    session.add(_new_delivery(endpoint.id, event_id, now))
                    created += 1
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([e[0] for e in events]))
                .values(dispatched_at=now)
            )
        return created, events[-1][0] if len(events) == self.batch_size else None

    def _ensure_settings_endpoint(self, now: datetime) -> None:
        assert self.settings_endpoint is not None
        with self.db.transaction() as session:
            found = session.scalar(
                select(WebhookEndpoint.id).where(
                    WebhookEndpoint.description == SETTINGS_ENDPOINT,
                    WebhookEndpoint.url == self.settings_endpoint.url,
                )
            )
            if found is None:
                session.add(
                    WebhookEndpoint(
                        url=self.settings_endpoint.url,
                        description=SETTINGS_ENDPOINT,
                        secret=self.settings_endpoint.secret,
                        event_types="",
                        enabled=True,
                        created_at=now,
                        updated_at=now,
                    )
                )

    # -- one delivery -----------------------------------------------------------------------

    def deliver(self, delivery_id: int) -> str:
        """Send one pending delivery once and record the try. Safe to call twice."""
        with self.db.transaction() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.state != PENDING:
                return "not_pending"
            endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
            if not endpoint.enabled:
                return "endpoint_disabled"
            event = session.get_one(OutboxEvent, delivery.event_id)
            url, secret, body = endpoint.url, endpoint.secret, event.payload.encode()
            public_id = event.public_id
        # The signature's timestamp is the real time of sending, whatever the (test) clock
        # says: receivers refuse a timestamp far from their own clock.
        headers = rules.signed_headers(secret, public_id, system_clock(), body)
        result = self.sender.post(url, body, headers, self.timeout)
        with self.db.transaction() as session:
            delivery = session.get_one(
                WebhookDelivery, delivery_id, with_for_update=True, populate_existing=True
            )
            if delivery.state != PENDING:
                return "settled_elsewhere"
            endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id, with_for_update=True)
            outcome = _record_try(session, delivery, endpoint, result, self.clock())
        # counted once the try is committed: delivered, failed (retried later) or gave_up
        WEBHOOK_DELIVERIES.labels(outcome=_METRIC_OUTCOME.get(outcome, "failed")).inc()
        return outcome


_METRIC_OUTCOME = {SUCCEEDED: "delivered", FAILED: "gave_up", "retry": "failed"}


def _new_delivery(endpoint_id: int, event_id: int, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint_id=endpoint_id,
        event_id=event_id,
        state=PENDING,
        tries=0,
        next_try_at=now,
        created_at=now,
        updated_at=now,
    )


def _record_try(
    session: Session,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    result: rules.SendResult,
    now: datetime,
) -> str:
    session.add(
        WebhookTry(
            delivery_id=delivery.id,
            at=now,
            status=result.status,
            latency_ms=result.latency_ms,
            error=result.error[:512] if result.error else None,
        )
    )
    delivery.tries += 1
    delivery.last_status = result.status
    delivery.last_error = result.error[:512] if result.error else None
    delivery.enqueued_at = None
    delivery.updated_at = endpoint.updated_at = now
    if rules.is_success(result.status):
        delivery.state = SUCCEEDED
        delivery.delivered_at = now
        delivery.next_try_at = None
        endpoint.failing_since = None
        return SUCCEEDED
    endpoint.failing_since = endpoint.failing_since or now
    retry_at = rules.next_try_at(delivery.tries, now)
    delivery.next_try_at = retry_at
    if retry_at is None:
        delivery.state = FAILED
    if rules.should_disable(endpoint.failing_since, now) and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"disabled automatically: no successful delivery since "
            f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC (last: {result.error})"
        )
        record_event(
            session,
            now,
            "webhook_endpoint_disabled",
            f"webhook endpoint {endpoint.id}: {endpoint.disabled_reason}",
            to_state="disabled",
        )
        log.error("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)
    log.info(
        "webhook delivery %s try %s: %s (%s ms)",
        delivery.id,
        delivery.tries,
        result.error,
        result.latency_ms,
    )
    return delivery.state if delivery.state == FAILED else "retry"
