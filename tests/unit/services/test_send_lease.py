"""A send still under way is never ruled "not received" (issue 8, item 3).

Stories: two hosts whose wall clocks are a minute apart agree on a send's lease (it is
read from the database's clock); a worker with too little of its lease left does not
send, nor waits for a rate-limit slot past it; an attempt ruled "not received" is asked
about once more, after the longest call has certainly ended, before a new order goes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.errors import ConflictError
from billing.gateway.rate_limit import RateLimitedGateway
from billing.services.lease import LeaseTerms, database_lease_clock
from billing.services.pipeline.charging import Charger
from billing.services.pipeline.scheduler_pass import Scheduler
from billing.storage.tables import ChargeAttempt
from tests.support.fakes import ManualClock
from tests.support.world import ServiceWorld, sqlite_url

STALE = timedelta(seconds=30)
LONGEST_CALL = timedelta(seconds=8)  # tests/support/world.py FAST_TIMEOUTS: 1 + 1 + 1 + 5


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ServiceWorld]:
    with ServiceWorld.fast(sqlite_url(tmp_path)) as w:
        yield w


def _attempts(world: ServiceWorld, sub_id: int) -> list[ChargeAttempt]:
    return world.attempts(sub_id)


def _charger_on(world: ServiceWorld, clock: ManualClock) -> Charger:
    """A worker on a host whose clock is ``clock``, leases on the database's clock."""
    return Charger(
        world.db,
        world.gateway,
        world.charger.policy,
        clock=clock,
        stale_sending_after=STALE,
        longest_call=LONGEST_CALL,
        lease_clock=database_lease_clock,
    )


def _claimed(world: ServiceWorld) -> tuple[int, int]:
    """A due subscription and its attempt, taken off the queue by a worker not yet run."""
    sub_id = world.subscribe()
    return sub_id, world.queued_charge()


def _sent_without_answer(world: ServiceWorld) -> tuple[int, int]:
    """A due subscription whose charge a worker claimed and sent just now: its request is
    still travelling (``sending``), no answer yet."""
    sub_id = world.subscribe()
    return sub_id, world.sent_without_answer()


# -- (a) one clock for leases -----------------------------------------------------------------


def test_hosts_with_clocks_a_minute_apart_do_not_rule_a_send_stale_early(
    world: ServiceWorld,
) -> None:
    sub_id, attempt_id = _claimed(world)
    real = datetime.now(UTC)
    worker_host = ManualClock(real)  # host A: the worker, its clock right
    sweep_host = ManualClock(real + timedelta(seconds=60))  # host B: a minute ahead
    policy = world.charger.policy
    worker = _charger_on(world, worker_host)
    sweeper = _charger_on(world, sweep_host)
    scheduler = Scheduler(
        world.db,
        world.dispatcher,
        policy,
        clock=sweep_host,
        stale_sending_after=STALE,
        lease_clock=database_lease_clock,
    )
    seen: list[str] = []

    def meanwhile(_order: str) -> None:
        # The worker's request is on its way; host B looks at the send a moment later.
        world.gateway.before_charge = None
        seen.append(sweeper.reconcile(attempt_id))
        seen.append(f"reconciles={scheduler.dispatch_reconciles(sweep_host(), _report())}")

    world.gateway.before_charge = meanwhile
    assert worker.charge(attempt_id) == "paid"
    assert seen == ["in_flight", "reconciles=0"]
    assert [a.state for a in _attempts(world, sub_id)] == ["paid"]
    assert len(world.gateway.payment_calls) == 1
    assert world.gateway.status_calls == []  # nobody asked about (or gave up on) the order


def _report():  # type: ignore[no-untyped-def]
    from billing.services.pipeline.scheduler_pass import PassReport

    return PassReport()


def test_the_lease_starts_on_the_database_clock_not_the_workers(world: ServiceWorld) -> None:
    sub_id = world.subscribe()
    world.scheduler.run_pass()
    [attempt_id] = world.dispatcher.charges
    skewed = ManualClock(datetime.now(UTC) - timedelta(minutes=5))  # a host five minutes slow
    worker = _charger_on(world, skewed)
    before = datetime.now(UTC)
    worker.charge(attempt_id)
    after = datetime.now(UTC)
    [attempt] = _attempts(world, sub_id)
    assert attempt.sent_at is not None
    assert before - timedelta(seconds=1) <= attempt.sent_at <= after + timedelta(seconds=1)


# -- (b) the send window covers every phase ---------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "left"),
    [(0, 22), (10, 12), (21.5, 0.5), (22, 0), (40, -18)],
)
def test_the_send_window_is_the_lease_minus_the_longest_call(elapsed: float, left: float) -> None:
    terms = LeaseTerms(STALE, LONGEST_CALL)
    assert terms.remaining(timedelta(seconds=elapsed)) == timedelta(seconds=left)


@pytest.mark.parametrize(
    ("seconds_after_claim", "stale", "recheck_counts"),
    [(29.9, False, False), (30, True, False), (37.9, True, False), (38, True, True)],
)
def test_stale_and_the_re_check_are_judged_from_the_lease_start(
    seconds_after_claim: float, stale: bool, recheck_counts: bool
) -> None:
    terms, start = LeaseTerms(STALE, LONGEST_CALL), datetime(2026, 12, 1, tzinfo=UTC)
    now = start + timedelta(seconds=seconds_after_claim)
    assert terms.is_stale(start, now) is stale
    assert terms.recheck_counts(start, now) is recheck_counts


def test_a_lease_no_longer_than_the_longest_call_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the send lease"):
        LeaseTerms(timedelta(seconds=8), LONGEST_CALL)


def test_a_worker_does_not_wait_for_a_rate_limit_slot_past_its_lease(world: ServiceWorld) -> None:
    """Claimed, then 15 s lost; the rate limiter has no slot for 20 s. Waiting the full
    max_wait (60 s) would start the call 35 s into a 30 s lease, after the sweep had ruled
    the send "not received" and planned a second order."""
    sub_id, attempt_id = _claimed(world)
    start = world.clock()
    granted_at = start + timedelta(seconds=35)

    class SlotIn20s:
        def acquire(self) -> bool:
            return world.clock() >= granted_at

    limited = RateLimitedGateway(
        world.gateway,
        SlotIn20s(),
        max_wait=60,
        sleep=lambda s: world.clock.advance(seconds=s),
        clock=lambda: world.clock().timestamp(),
    )
    charger = world.charger
    charger.gateway = limited
    stalls = iter([0, 0, 15])  # charge() reads the clock, the claim, then the send check

    def stalling_clock() -> datetime:
        world.clock.advance(seconds=next(stalls, 0))
        return world.clock()

    charger.clock = stalling_clock
    charger.charge(attempt_id)
    assert world.gateway.payment_calls == []  # the call never started
    assert world.clock() - start <= STALE - LONGEST_CALL + timedelta(seconds=0.1)
    [attempt] = _attempts(world, sub_id)
    assert attempt.reason == "rate_limited" and attempt.state == "failed"


# -- (c) "not received" is asked about once more before the next order ------------------------


def test_a_charge_that_arrives_after_the_not_received_ruling_is_found_before_a_new_order(
    world: ServiceWorld,
) -> None:
    sub_id, _ = _sent_without_answer(world)
    world.clock.advance(seconds=31)
    world.scheduler.run_pass()
    world.work()
    [first] = _attempts(world, sub_id)
    assert first.state == "failed" and first.reason == "not_received"
    # The request reaches the bank after all, just after the ruling: the order is charged.
    world.late_deposit(first, "late-1")
    for _ in range(6):  # the transient backoff (5 s) passes; no second order goes out
        world.tick(2)
    assert [a.state for a in _attempts(world, sub_id)] == ["paid"]
    assert world.invoices(sub_id)[0].status == "paid"
    assert len(world.gateway.payment_calls) == 0
    assert len(world.gateway.deposited()) == 1


def test_no_new_attempt_while_the_re_check_cannot_get_an_answer(world: ServiceWorld) -> None:
    sub_id, _ = _sent_without_answer(world)
    world.tick(31)
    world.gateway.auth_ok = False  # status queries fail: the re-check has no answer
    world.tick(10)
    world.tick(10)
    assert len(_attempts(world, sub_id)) == 1
    world.gateway.auth_ok = True
    world.tick(31)  # asked again (after a lease): no such order, so a new order follows
    world.tick()
    attempts = _attempts(world, sub_id)
    assert [a.state for a in attempts] == ["failed", "paid"]
    assert len(world.gateway.deposited()) == 1


def test_a_manual_retry_waits_for_the_not_received_re_check(world: ServiceWorld) -> None:
    sub_id, _ = _sent_without_answer(world)
    world.tick(31)  # ruled "not received"
    retries = world.app.actions.retries
    with pytest.raises(ConflictError, match="ruled not received"):
        retries.retry(sub_id, actor="ops", reason="customer called")
    bulk = retries.bulk_retry("transient", actor="ops", reason="after the outage")
    assert (bulk["count"], bulk["skipped"]) == (0, [])  # not even listed as a failure
    assert len(_attempts(world, sub_id)) == 1
    world.tick(10)  # re-checked: still no such order
    done = retries.retry(sub_id, actor="ops", reason="customer called")
    world.work()
    assert world.invoices(sub_id)[0].status == "paid"
    assert done["order_number"] != _attempts(world, sub_id)[0].order_number


def test_an_early_answer_does_not_end_the_re_check(world: ServiceWorld) -> None:
    """A callback makes us ask right after the ruling: "no such order" then proves nothing
    yet (the request may still be on its way), so the invoice still waits."""
    sub_id, attempt_id = _sent_without_answer(world)
    world.tick(31)  # ruled "not received"
    world.clock.advance(seconds=6)  # the transient backoff (5 s) is over
    assert world.charger.reconcile(attempt_id) == "unchanged"  # asked early, on a callback
    world.tick()
    assert len(_attempts(world, sub_id)) == 1  # still waiting for the re-check proper
    world.tick(4)  # now the longest call has certainly ended: asked again, still none
    world.tick()
    assert [a.state for a in _attempts(world, sub_id)] == ["failed", "paid"]
