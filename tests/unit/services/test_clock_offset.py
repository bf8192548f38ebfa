"""BILLING_CLOCK_OFFSET_SECONDS (testing only, the chaos run): one host's wall clock
drifted. What that host decides on its own clock moves with it; its send leases stay on
the database's clock, so a drifted worker can never shorten another worker's lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

from billing.bootstrap import build_app
from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.services.lease import database_lease_clock
from billing.settings import Settings
from tests.support.fakes import FakeGateway, RecordingDispatcher
from tests.support.world import FAST_TIMEOUTS


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'billing.db'}",
        **FAST_TIMEOUTS,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("offset", [-90.0, 90.0])
def test_a_drifted_host_reads_its_own_clock_but_leases_from_the_database(
    tmp_path: Path, offset: float
) -> None:
    settings = _settings(tmp_path, clock_offset_seconds=offset)
    app = build_app(
        settings, gateway=FakeGateway(), policy=DEFAULT_POLICY, dispatcher=RecordingDispatcher()
    )
    try:
        drift = app.clock() - datetime.now(UTC)
        assert abs(drift - timedelta(seconds=offset)) < timedelta(seconds=5)
        assert app.charger.lease_clock is database_lease_clock
        assert app.scheduler.lease_clock is database_lease_clock
    finally:
        app.close()


def test_no_offset_is_the_plain_wall_clock(tmp_path: Path) -> None:
    app = build_app(
        _settings(tmp_path),
        gateway=FakeGateway(),
        policy=DEFAULT_POLICY,
        dispatcher=RecordingDispatcher(),
    )
    try:
        assert abs(app.clock() - datetime.now(UTC)) < timedelta(seconds=5)
        assert app.charger.lease_clock is database_lease_clock
    finally:
        app.close()


def test_an_offset_is_refused_with_the_test_clock_and_beyond_400_days(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="cannot be combined with test_mode"):
        _settings(tmp_path, clock_offset_seconds=60, test_mode=True)
    with pytest.raises(pydantic.ValidationError):
        _settings(tmp_path, clock_offset_seconds=401 * 86400)
