"""At most one status check per attempt waits in the queue (issue 8, found by the chaos run).

Stories: an unknown outcome whose check is still queued behind a month-start backlog is
not enqueued again on every scheduler pass (the queue grew to ~20,000 messages and starved
the charges); once a worker took the check, the next one follows the policy's cadence; a
check message that was lost (the queue drained without it) is sent again after
``requeue_after``, as a lost charge is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.world import ServiceWorld, sqlite_url


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ServiceWorld]:
    with ServiceWorld.fast(sqlite_url(tmp_path), requeue_after=60) as w:
        yield w


def _unknown(world: ServiceWorld) -> int:
    """A subscription charged just now whose order stays pending at the gateway."""
    sub_id = world.subscribe("pending-1")
    world.tick()
    [attempt] = world.attempts(sub_id)
    assert attempt.state == "unknown"
    return sub_id


def test_a_queued_status_check_is_not_enqueued_again_on_every_pass(world: ServiceWorld) -> None:
    sub_id = _unknown(world)
    [attempt_id] = [a.id for a in world.attempts(sub_id)]
    world.dispatcher.charges.append(999_999)  # a backlog: the queue does not drain
    for _ in range(20):  # 50 s of passes, far past the lease and the policy's cadence
        world.clock.advance(seconds=2.5)
        world.scheduler.run_pass()
    assert world.dispatcher.reconciles == [attempt_id]


def test_after_a_worker_takes_the_check_the_next_one_follows_the_cadence(
    world: ServiceWorld,
) -> None:
    sub_id = _unknown(world)
    [attempt_id] = [a.id for a in world.attempts(sub_id)]
    world.clock.advance(seconds=2)
    world.scheduler.run_pass()
    assert world.dispatcher.reconciles == [attempt_id]
    world.work()  # asked: still pending
    assert world.attempts(sub_id)[0].state == "unknown"
    world.clock.advance(seconds=3)
    world.scheduler.run_pass()
    assert world.dispatcher.reconciles == [attempt_id]


def test_a_lost_check_message_is_sent_again_after_requeue_after(world: ServiceWorld) -> None:
    sub_id = _unknown(world)
    [attempt_id] = [a.id for a in world.attempts(sub_id)]
    world.clock.advance(seconds=2)
    world.scheduler.run_pass()
    world.dispatcher.reconciles.clear()  # the broker lost it (Redis restarted)
    world.clock.advance(seconds=40)
    world.scheduler.run_pass()
    assert world.dispatcher.reconciles == []  # not yet: it may still be on its way
    world.clock.advance(seconds=30)
    world.scheduler.run_pass()
    assert world.dispatcher.reconciles == [attempt_id]
