"""``billing retry --all --category transient`` after a gateway outage (issue 8, item 16).

Transient failures leave subscriptions active, so a bulk retry restricted to past_due
selected nobody; an unknown category silently selected nobody too. Now it selects the
active subscriptions whose open invoice last failed transiently, refuses a word that can
match nothing (listing the valid categories), and the CLI names the filter ``--category``
while ``--reason`` is the free-text audit reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.entrypoints.cli.main import cli
from billing.errors import ValidationError
from tests.support.scripted_world import ScriptedWorld, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ScriptedWorld]:
    w = make_world(tmp_path)
    yield w
    w.db.dispose()


def _outage(world: ScriptedWorld) -> list[int]:
    down = [world.subscribe(f"down-{n}", customer_id=f"d{n}") for n in range(2)]
    world.subscribe("approve-1", customer_id="fine")
    world.scheduler.run_pass()
    world.work()
    return down


def test_bulk_retry_of_transient_failures_selects_the_active_subscriptions(
    world: ScriptedWorld,
) -> None:
    down = _outage(world)
    assert {world.sub(s).status for s in down} == {"active"}
    dry = world.app.actions.retries.bulk_retry(
        "transient", actor="op", reason="outage over", dry_run=True
    )
    assert dry["subscription_ids"] == down
    done = world.app.actions.retries.bulk_retry("transient", actor="op", reason="outage over")
    assert done["subscription_ids"] == down and done["skipped"] == []
    assert len(world.dispatcher.charges) == 2


@pytest.mark.parametrize("word", ["transient_error", "outage", "paid", "unknown"])
def test_an_unknown_category_is_an_error_listing_the_valid_ones(
    world: ScriptedWorld, word: str
) -> None:
    _outage(world)
    with pytest.raises(ValidationError, match="transient, soft_decline, merchant_config"):
        world.app.actions.retries.bulk_retry(word, actor="op", reason="r", dry_run=True)


def test_cli_retry_all_takes_category_and_keeps_reason_for_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    old_form = runner.invoke(cli, ["retry", "--all", "--reason", "transient", "--dry-run"])
    assert old_form.exit_code == 2
    assert "--all needs --category" in old_form.output
    bad = runner.invoke(cli, ["retry", "--all", "--category", "outage", "--dry-run"])
    assert isinstance(bad.exception, ValidationError)  # `billing` prints it as one error line
    assert "transient, soft_decline, merchant_config" in str(bad.exception)
    ok = runner.invoke(
        cli,
        ["retry", "--all", "--category", "transient", "--reason", "outage over", "--dry-run"],
    )
    assert ok.exit_code == 0, ok.output
    assert "would retry 0 subscription(s) failing with transient" in ok.output
