"""Callback replays are filtered across processes through Redis (SET NX EX)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from billing.entrypoints.http.callback_replay import KEY_PREFIX, RedisReplayFilter
from billing.entrypoints.http.callbacks import CallbackConfig, create_callback_app
from tests.unit.entrypoints.test_callback_app import SECRET, World, callback_world, send


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from callback_world(tmp_path)


def _process(world: World, redis_url: str) -> object:
    """One callback process: its own app, the shared Redis."""
    config = CallbackConfig(hmac_secret=SECRET, redis_url=redis_url)
    return create_callback_app(world.db, world.dispatcher, config, clock=world.clock)


def test_a_callback_replayed_to_another_process_is_acted_on_once(
    world: World, redis_url: str
) -> None:
    first, second = _process(world, redis_url), _process(world, redis_url)
    signed = world.signed()
    assert send(first, params=signed).status_code == 200  # type: ignore[arg-type]
    assert send(second, params=signed).status_code == 200  # type: ignore[arg-type]
    assert world.dispatcher.reconciles == [world.attempt.id]
    assert len(world.events("callback_received")) == 1

    client = redis.Redis.from_url(redis_url)
    [key] = client.keys(f"{KEY_PREFIX}*")
    assert 0 < client.ttl(key) <= 60  # forgotten after the window, by Redis itself
    assert world.attempt.order_number.encode() not in key
    client.close()


def test_a_failed_claim_is_released_so_the_retry_in_another_process_acts(
    world: World, redis_url: str
) -> None:
    first, second = _process(world, redis_url), _process(world, redis_url)
    world.dispatcher.broker_down = True
    assert send(first, params=world.signed()).status_code == 503  # type: ignore[arg-type]
    world.dispatcher.broker_down = False
    assert send(second, params=world.signed()).status_code == 200  # type: ignore[arg-type]
    assert world.dispatcher.reconciles == [world.attempt.id]


def test_without_redis_reachable_the_callback_is_still_acted_on(world: World) -> None:
    unreachable = "redis://127.0.0.1:1/0"
    assert send(_process(world, unreachable), params=world.signed()).status_code == 200  # type: ignore[arg-type]
    assert world.dispatcher.reconciles == [world.attempt.id]


def test_the_filter_claims_once_per_key(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    seen = RedisReplayFilter(client, timedelta(seconds=30))
    assert seen.claim(("1", None, "deposited", "1"))
    assert not seen.claim(("1", None, "deposited", "1"))
    assert seen.claim(("1", None, "deposited", "0"))
    seen.release(("1", None, "deposited", "1"))
    assert seen.claim(("1", None, "deposited", "1"))
    client.close()
