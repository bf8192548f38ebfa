"""The partial indexes the month-start claims read are written as SQL literals (in the
models and, frozen, in migration 0016). If the domain's status sets change and the literals
do not, the claim's predicate no longer implies the index's: the planner silently falls back
to sorting every due row for each batch. These tests tie the literals to the domain."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from billing.domain.model import BILLABLE_STATUSES, IN_FLIGHT_STATES, AttemptState
from billing.storage import tables

MIGRATION = Path(tables.__file__).parent / "migrations" / "versions" / "0016_claim_indexes.py"


def _quoted(sql: str) -> set[str]:
    return set(re.findall(r"'([a-z_]+)'", sql))


def _migration() -> object:
    spec = importlib.util.spec_from_file_location("m0016", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_billable_index_covers_exactly_the_statuses_the_scheduler_opens_invoices_for() -> None:
    assert _quoted(tables.BILLABLE_SQL) == {s.value for s in BILLABLE_STATUSES}


def test_the_in_flight_indexes_cover_exactly_the_in_flight_states() -> None:
    in_flight = {s.value for s in IN_FLIGHT_STATES}
    assert _quoted(tables.IN_FLIGHT_SQL) == in_flight
    assert _quoted(tables.MANUAL_IN_FLIGHT_SQL) == in_flight | {"manual"}
    assert _quoted(tables.PENDING_SQL) == {AttemptState.PENDING.value}


def test_the_migration_creates_the_indexes_the_models_declare() -> None:
    migration = _migration()
    assert migration.BILLABLE == tables.BILLABLE_SQL
    assert migration.MANUAL_IN_FLIGHT == tables.MANUAL_IN_FLIGHT_SQL
    assert migration.PENDING == tables.PENDING_SQL
    assert migration.UNDISPATCHED == tables.UNDISPATCHED_SQL
