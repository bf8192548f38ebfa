"""Two merchant accounts on real PostgreSQL: a credential error pauses only its account,
nobody is dunned for it, and the probe resumes it once the credentials work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.domain.policy_file import load_policy
from billing.domain.subscription import NewSubscription
from billing.gateway.accounts import Account, MerchantGateways
from billing.services.read.status import system_status
from billing.storage.circuit_row import load_circuits
from tests.support.fakes import FakeGateway, ManualClock, RecordingDispatcher
from tests.support.world import build_test_app

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).resolve().parents[2] / "config" / "dunning-fast.toml"


def test_a_credential_error_pauses_only_its_account_and_the_probe_resumes_it(
    pg_url: str,
) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    home, eu = FakeGateway(), FakeGateway()
    eu.auth_ok = False  # a wrong password for the eu login
    gateways = MerchantGateways(
        {"default": Account("default", home), "eu": Account("eu", eu, dialect="all2pay")}
    )
    dispatcher = RecordingDispatcher()
    app = build_test_app(
        pg_url,
        policy=load_policy(FAST_POLICY),
        clock=clock,
        gateway=gateways,  # type: ignore[arg-type]
        dispatcher=dispatcher,
        merchants={"eu": {"url": "https://eu.example/v1", "token": "eu-token-value"}},
    )

    def subscribe(name: str, account: str) -> int:
        new = NewSubscription(
            customer_id=name,
            binding_id=f"approve-{name}",
            amount=1000,
            schedule="0 3 1 * *",
            timezone="UTC",
            start_at=clock(),
            merchant_account=account,
            customer_email=f"{name}@example.com",
        )
        return int(app.actions.subscriptions.create(new, actor="crm", reason="signup").body["id"])

    def tick(seconds: float = 0) -> None:
        clock.advance(seconds=seconds)
        app.scheduler.run_pass()
        while dispatcher.charges or dispatcher.reconciles:
            charges, dispatcher.charges = dispatcher.charges, []
            reconciles, dispatcher.reconciles = dispatcher.reconciles, []
            for attempt_id in charges:
                app.charger.charge(attempt_id)
            for attempt_id in reconciles:
                app.charger.reconcile(attempt_id)

    try:
        homes = [subscribe(f"h{n}", "default") for n in range(2)]
        eus = [subscribe(f"e{n}", "eu") for n in range(3)]
        tick()
        assert len(home.deposited()) == 2
        with app.db.transaction() as session:
            circuits = load_circuits(session)
        assert circuits["eu"].state == "open" and "auth_error" in (circuits["eu"].reason or "")
        assert "default" not in circuits or circuits["default"].state == "closed"
        eu_calls = len(eu.payment_calls)
        assert eu_calls >= 1  # the first charge met the error; the others were held back

        # While paused, the eu account's charges wait; nobody enters dunning.
        tick(0.5)
        assert len(eu.payment_calls) == eu_calls
        report = system_status(
            app.db, {"default": {"dialect": "rbs"}, "eu": {"dialect": "all2pay"}}
        )
        accounts = {m["name"]: m for m in report["merchant_accounts"]}
        assert (accounts["default"]["state"], accounts["eu"]["state"]) == ("running", "paused")
        assert accounts["eu"]["subscriptions"] == 3
        assert report["charging"]["state"] == "partly_paused"
        with app.db.transaction() as session:
            from billing.storage.tables import Subscription

            statuses = {s.id: s.status for s in session.query(Subscription)}
        assert {statuses[i] for i in homes + eus} == {"active"}

        # The password fixed: the next probe lets the account in and its charges go through.
        eu.auth_ok = True
        for _ in range(6):
            tick(timedelta(seconds=6).total_seconds())
        assert len(eu.deposited()) == 3
        with app.db.transaction() as session:
            assert load_circuits(session)["eu"].state == "closed"
        assert not set(eu.orders) & set(home.orders)  # each order went to its own account
    finally:
        app.close()
