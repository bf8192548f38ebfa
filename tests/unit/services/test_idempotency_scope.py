"""Idempotency keys are scoped per principal and endpoint and expire (24 h by default, the
setting ``BILLING_IDEMPOTENCY_KEY_TTL``), as Stripe does."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from billing.auth_tokens import Role
from billing.settings import Settings
from billing.storage.database import Database
from tests.unit.entrypoints import test_admin_api
from tests.unit.entrypoints.test_admin_api import Api

api = test_admin_api.api  # the admin API on the real graph (SQLite, fakes)

BODY = {
    "customer_id": "cust-1",
    "binding_id": "approve-1",
    "amount": 49900,
    "schedule": "0 3 1 * *",
    "reason": "signup",
}


def _create(api: Api, role: Role, key: str) -> tuple[int, int, bool]:
    response = api.call(
        "POST", "/api/subscriptions", role=role, json=BODY, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 201, response.text
    replayed = response.headers.get("Idempotent-Replayed") == "true"
    return response.status_code, int(response.json()["id"]), replayed


def test_two_callers_with_the_same_key_never_see_each_others_answer(api: Api) -> None:
    _, backend_id, _ = _create(api, Role.BACKEND, "signup-42")
    _, operator_id, replayed = _create(api, Role.OPERATOR, "signup-42")
    assert operator_id != backend_id and not replayed
    _, again, replayed = _create(api, Role.BACKEND, "signup-42")
    assert (again, replayed) == (backend_id, True)


def test_the_same_key_on_another_endpoint_is_another_key(api: Api) -> None:
    sub = api.create("approve-1", start_at=api.clock().isoformat())
    api.tick()
    [paid] = api.attempts(sub["id"])
    assert paid.state == "paid"
    _create(api, Role.OPERATOR, "k-1")
    refund = api.call(
        "POST",
        f"/api/attempts/{paid.id}/refund",
        json={"reason": "r"},
        headers={"Idempotency-Key": "k-1"},
    )
    # Not "this key was already used for a different request": it is another endpoint's key.
    assert refund.status_code == 200, refund.text
    assert refund.json()["state"] == "succeeded"


def test_a_key_expires_after_a_day_then_it_is_new(api: Api) -> None:
    _, first, _ = _create(api, Role.BACKEND, "monthly-signup")
    api.clock.advance(hours=23)
    _, same, replayed = _create(api, Role.BACKEND, "monthly-signup")
    assert (same, replayed) == (first, True)
    api.clock.advance(hours=2)
    _, fresh, replayed = _create(api, Role.BACKEND, "monthly-signup")
    assert fresh != first and not replayed
    _, again, replayed = _create(api, Role.BACKEND, "monthly-signup")
    assert (again, replayed) == (fresh, True)


def test_the_lifetime_is_a_setting() -> None:
    assert Settings().idempotency_key_ttl == 86400
    assert Settings(idempotency_key_ttl=3600).idempotency_key_ttl == 3600


def test_the_migration_goes_down_and_up(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    config = db._alembic_config()
    command.downgrade(config, "0006")
    command.upgrade(config, "head")
    with db.transaction() as session:
        columns = {c["name"] for c in inspect(session.connection()).get_columns("idempotency_keys")}
    assert "principal" in columns
    db.dispose()
