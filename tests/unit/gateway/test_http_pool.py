"""The sharded gateway pool: never more connections than configured, one shard per thread."""

from __future__ import annotations

import threading

import httpx

from billing.gateway.http_pool import SHARD_SIZE, ShardedHttp
from billing.gateway.send_gate import GatedTransport


def _limit(client: httpx.Client) -> int:
    gated = client._transport
    assert isinstance(gated, GatedTransport)  # every shard checks the slot before writing
    pool = gated.inner._pool  # type: ignore[attr-defined]
    return int(pool._max_connections)


def test_the_shards_hold_exactly_max_connections() -> None:
    for total in (1, 15, 16, 50, 100, 101, 333):
        http = ShardedHttp(max_connections=total)
        try:
            sizes = [_limit(c) for c in http.clients]
            assert sum(sizes) == total
            assert max(sizes) - min(sizes) <= 1
            assert len(http.clients) == max(1, total // SHARD_SIZE)
        finally:
            http.close()


def test_a_thread_always_uses_the_same_shard_and_threads_are_dealt_in_turn() -> None:
    http = ShardedHttp(max_connections=64)
    try:
        seen: list[tuple[int, int]] = []

        def run() -> None:
            first = http._client()
            assert all(http._client() is first for _ in range(3))
            seen.append((threading.get_ident(), http.clients.index(first)))

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
            t.join()
        assert sorted(shard for _, shard in seen) == [0, 0, 1, 1, 2, 2, 3, 3]
    finally:
        http.close()


def test_a_transport_handed_in_is_one_pool() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": 1}))
    http = ShardedHttp(max_connections=100, transport=transport)
    try:
        assert len(http.clients) == 1
        assert http.post("http://gateway.test/x").json() == {"ok": 1}
    finally:
        http.close()
