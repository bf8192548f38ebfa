"""The README's first command: ``billing demo`` on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.conftest import BILLING, ROOT

pytestmark = pytest.mark.e2e


def test_the_demo_runs_the_whole_pipeline_and_every_charge_is_recorded_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    result = subprocess.run(
        [*BILLING, "demo", "--subscriptions", "40", "--periods", "2", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["subscriptions"] == 40
    assert summary["exactly_once"] is True
    assert summary["gateway_deposited_orders"] == summary["invoices_paid"] > 0
    assert summary["invoices_recovered"] > 0  # "recover" cards paid after declines
    assert summary["ever_waited_for_new_card"] > 0  # "notfound" / "expired" cards
    assert summary["ever_suspended"] > 0  # "insufficient" cards ran out of retries
    events = summary["events_by_type"]
    # Every charge was announced in advance: one notice per scheduled charge, per period.
    assert events["invoice.upcoming"] >= 40
    assert events["invoice.paid"] == summary["invoices_paid"]
    assert events["subscription.created"] == 40
