"""``BILLING_LOG_FORMAT=json``: one JSON object per line, naming the subscription, invoice,
attempt and order a line is about, with no secret and no full bindingId."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.bootstrap import LOG_REDACTION, prepare_handler
from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.gateway.redact import Secrets
from billing.observability.logs import bind, log_context
from tests.support.world import ServiceWorld

FAST_POLICY = Path(__file__).resolve().parents[3] / "config" / "dunning-fast.toml"
BINDING = "insufficient-5d2e1c0b-7f3a-4c11-9a60-aa51c0ffee77"
PASSWORD = "gateway-password-that-must-not-leak"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    prepare_handler(handler, "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_charge_log_lines_carry_the_ids_and_no_secret(
    tmp_path: Path, json_lines: io.StringIO
) -> None:
    world = ServiceWorld.build(
        f"sqlite:///{tmp_path / 'billing.db'}",
        policy=load_policy(FAST_POLICY),
        stale_sending_after=30,
        gateway_password=PASSWORD,
    )
    try:
        created = world.app.actions.subscriptions.create(
            NewSubscription(
                customer_id="cust-1",
                binding_id=BINDING,
                amount=49900,
                schedule="0 3 1 * *",
                start_at=world.clock(),
            ),
            actor="crm",
            reason="signup",
        )
        sub_id = int(created.body["id"])
        world.tick()
        [attempt] = world.attempts(sub_id)
        logging.getLogger("billing.test").warning("echo bindingId=%s with %s", BINDING, PASSWORD)
    finally:
        world.db.dispose()

    records = _records(json_lines)
    settled = [r for r in records if r["logger"] == "billing.charging"]
    assert settled, records
    for record in settled:
        assert record["attempt_id"] == attempt.id
        assert record["invoice_id"] == attempt.invoice_id
        assert record["subscription_id"] == sub_id
        assert record["order_number"] == attempt.order_number
        assert {"time", "level", "message"} <= set(record)
    assert "soft_decline" in " ".join(str(r["message"]) for r in settled)
    outside = [r for r in records if r["logger"] == "billing.test"]
    assert outside and "attempt_id" not in outside[0]  # the scope ended with the charge
    text = json_lines.getvalue()
    assert PASSWORD not in text
    assert BINDING not in text


def test_context_ids_stay_in_their_scope_and_secrets_in_extras_are_redacted(
    json_lines: io.StringIO,
) -> None:
    LOG_REDACTION.remember(Secrets.of(secrets=["token-abcdef-0123456789"]))
    log = logging.getLogger("billing.test")
    bind(attempt_id=1)  # no scope: nothing to bind to
    with log_context(attempt_id=7):
        bind(order_number="7-1-x", invoice_id=None)
        log.info("inside", extra={"note": "token-abcdef-0123456789"})
    log.info("after")
    inside, after = _records(json_lines)
    assert (inside["attempt_id"], inside["order_number"]) == (7, "7-1-x")
    assert "invoice_id" not in inside
    assert "token-abcdef-0123456789" not in json.dumps(inside)
    assert "attempt_id" not in after
    with pytest.raises(ValueError, match="binding_id"):
        bind(binding_id=BINDING)
