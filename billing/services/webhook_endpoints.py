"""What operators do with webhook endpoints: add (the signing secret shown once), list,
disable, enable, remove, rotate the secret (the new one shown once), look at deliveries,
redeliver one by hand, send a test event.

Decides: whether a URL and a list of event types are acceptable (one clear error, nothing
changed), and what each operation changes. Every change takes an actor and a reason and is
written to the audit log in the same transaction. Must never show a secret again after
``add`` or ``rotate_secret``, or put it in an error, an audit row or a log line.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, or_, select

from billing.domain import webhooks as rules
from billing.domain.public_events import parse_types
from billing.errors import ConflictError, NotFoundError, ValidationError
from billing.services.audit import clean_actor, clean_reason, record_event
from billing.services.pipeline.webhook_delivery import FAILED, PENDING
from billing.services.ports import Clock, system_clock
from billing.services.read.views import iso
from billing.services.webhook_ports import WebhookQueue, WebhookSender
from billing.storage.database import Database
from billing.storage.outbox_tables import (
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookTry,
)

MAX_LIST = 1000


def check_url(url: str) -> str:
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(text) > 2048:
        raise ValidationError(f"invalid webhook URL {text[:80]!r}: use http(s)://host/path")
    if parts.username or parts.password:
        raise ValidationError("a webhook URL must not carry credentials")
    return text


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": [t for t in endpoint.event_types.split(",") if t] or ["*"],
        "enabled": endpoint.enabled,
        "status": "enabled" if endpoint.enabled else "disabled",
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": iso(endpoint.failing_since),
        "created_at": iso(endpoint.created_at),
    }


def delivery_view(delivery: WebhookDelivery, event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": event.public_id,
        "event_type": event.type,
        "state": delivery.state,
        "tries": delivery.tries,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "next_try_at": iso(delivery.next_try_at),
        "delivered_at": iso(delivery.delivered_at),
        "created_at": iso(delivery.created_at),
    }


class WebhookEndpoints:
    def __init__(
        self,
        db: Database,
        sender: WebhookSender,
        queue: WebhookQueue,
        *,
        clock: Clock = system_clock,
        livemode: bool = True,
    ) -> None:
        self.db = db
        self.sender = sender
        self.queue = queue
        self.clock = clock
        self.livemode = livemode

    def add(
        self,
        url: str,
        events: str | None = None,
        description: str | None = None,
        *,
        actor: str,
        reason: str,
    ) -> dict[str, Any]:
        """A new enabled endpoint; the answer carries its signing secret (shown only here)."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        clean = check_url(url)
        try:
            types = parse_types(events)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if description is not None and len(description) > 512:
            raise ValidationError("description must be at most 512 characters")
        secret = rules.secret_from_bytes(secrets.token_bytes(32))
        now = self.clock()
        with self.db.transaction() as session:
            endpoint = WebhookEndpoint(
                url=clean,
                description=description,
                secret=secret,
                event_types=",".join(types),
                enabled=True,
                created_at=now,
                updated_at=now,
            )
            session.add(endpoint)
            session.flush()
            _audit(session, endpoint, now, "created", actor, reason)
            return endpoint_view(endpoint) | {"secret": secret}

    def list_endpoints(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            rows = session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
            return [endpoint_view(e) for e in rows]

    def set_enabled(
        self, endpoint_id: int, enabled: bool, *, actor: str, reason: str
    ) -> dict[str, Any]:
        """Deliver to an endpoint again (its failure streak forgotten), or stop delivering
        (its deliveries wait). Asking for the state it is already in is refused."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            endpoint = _endpoint(session, endpoint_id, lock=True)
            if endpoint.enabled == enabled:
                raise ConflictError(
                    f"webhook endpoint {endpoint_id} is already "
                    + ("enabled" if enabled else "disabled")
                )
            endpoint.enabled = enabled
            endpoint.updated_at = now
            endpoint.disabled_reason = None if enabled else f"disabled by {actor}: {reason}"
            if enabled:
                endpoint.failing_since = None
            _audit(session, endpoint, now, "enabled" if enabled else "disabled", actor, reason)
            return endpoint_view(endpoint)

    def rotate_secret(self, endpoint_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """A new signing secret (in this answer only); the old one stops signing at once,
        including for deliveries still waiting to be retried."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        secret = rules.secret_from_bytes(secrets.token_bytes(32))
        now = self.clock()
        with self.db.transaction() as session:
            endpoint = _endpoint(session, endpoint_id, lock=True)
            endpoint.secret = secret
            endpoint.updated_at = now
            _audit(session, endpoint, now, "secret_rotated", actor, reason)
            return endpoint_view(endpoint) | {"secret": secret}

    def remove(self, endpoint_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            endpoint = _endpoint(session, endpoint_id, lock=True)
            view = endpoint_view(endpoint)
            _audit(session, endpoint, now, "removed", actor, reason)
            ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
            session.execute(delete(WebhookTry).where(WebhookTry.delivery_id.in_(ids)))
            session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            )
            session.delete(endpoint)
            return view | {"removed": True}

    def deliveries(
        self, *, endpoint_id: int | None = None, failed: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        if not 1 <= limit <= MAX_LIST:
            raise ValidationError(f"limit must be between 1 and {MAX_LIST}")
        query = select(WebhookDelivery, OutboxEvent).join(
            OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id
        )
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if failed:
            # given up, or still retrying after a failed try
            query = query.where(
                or_(
                    WebhookDelivery.state == FAILED,
                    and_(WebhookDelivery.state == PENDING, WebhookDelivery.tries > 0),
                )
            )
        with self.db.transaction() as session:
            rows = session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit)).all()
            return [delivery_view(d, e) for d, e in rows]

    def tries(self, delivery_id: int) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            rows = session.scalars(
                select(WebhookTry)
                .where(WebhookTry.delivery_id == delivery_id)
                .order_by(WebhookTry.id)
            )
            return [
                {"at": iso(t.at), "status": t.status, "latency_ms": t.latency_ms, "error": t.error}
                for t in rows
            ]

    def redeliver(self, delivery_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        """Try a delivery again now (same event id), whatever its state; enqueued at once."""
        actor, reason = clean_actor(actor), clean_reason(reason)
        now = self.clock()
        with self.db.transaction() as session:
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:
                raise NotFoundError(f"webhook delivery {delivery_id} does not exist")
            endpoint = _endpoint(session, delivery.endpoint_id)
            if not endpoint.enabled:
                raise ValidationError(f"endpoint {endpoint.id} is disabled: enable it first")
            delivery.state = PENDING
            delivery.tries = 0
            delivery.next_try_at = now
            delivery.enqueued_at = now
            delivery.updated_at = now
            event = session.get_one(OutboxEvent, delivery.event_id)
            view = delivery_view(delivery, event)
            _audit(session, endpoint, now, "redelivered", actor, f"{event.public_id}: {reason}")
        self.queue.deliver([delivery_id])
        return view

    def test(self, endpoint_id: int) -> dict[str, Any]:
        """Send a signed ``webhook.test`` event now and say what the endpoint answered."""
        with self.db.transaction() as session:
            endpoint = _endpoint(session, endpoint_id)
            url, secret = endpoint.url, endpoint.secret
        now = self.clock()
        event_id = "evt_test_" + secrets.token_hex(8)
        body = json.dumps(
            {
                "id": event_id,
                "type": "webhook.test",
                "created_at": iso(now),
                "livemode": self.livemode,
                "data": {"object": "webhook_endpoint", "id": endpoint_id},
            },
            separators=(",", ":"),
        ).encode()
        result = self.sender.post(
            url,
            body,
            rules.signed_headers(secret, event_id, system_clock(), body),
            rules.TIMEOUT_SECONDS,
        )
        return {
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "ok": rules.is_success(result.status),
            "status": result.status,
            "error": result.error,
            "latency_ms": result.latency_ms,
        }


def _endpoint(session: Any, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    if endpoint is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id} does not exist")
    assert isinstance(endpoint, WebhookEndpoint)
    return endpoint


def _audit(
    session: Any, endpoint: WebhookEndpoint, now: datetime, what: str, actor: str, reason: str
) -> None:
    """One audit row per endpoint change (``webhook_endpoint_<what>``), naming the endpoint
    by id only: a URL may carry a receiver's token, a secret never goes there."""
    record_event(
        session,
        now,
        f"webhook_endpoint_{what}",
        f"webhook endpoint {endpoint.id}: {reason}",
        to_state="enabled" if endpoint.enabled else "disabled",
        actor=actor,
    )
