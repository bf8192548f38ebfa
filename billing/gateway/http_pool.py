"""The gateway's HTTP connection pool, split into shards so a call never scans all of it.

httpcore's pool looks at every connection it holds (under one lock) each time a request
starts and each time a response is closed; with the batch path's hundred calls in flight
that scan was about a fifth of a worker's CPU. Here the connections are split among
shards of at most :data:`SHARD_SIZE`, and each thread always uses the same shard (threads
are dealt out in turn), so a scan looks at a few connections. The shards together never
hold more than ``max_connections``; the timeouts are those of one pool. Every shard's
transport checks the call's rate-limit slot right before a request is written
(:mod:`billing.gateway.send_gate`). This module decides nothing about a call's result, and
must never retry or send a request twice.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import httpx

from billing.gateway.send_gate import GatedTransport

#: Connections per shard: small enough that a scan is cheap, large enough to share.
SHARD_SIZE = 16


class ShardedHttp:
    """``post`` and ``close`` over a few :class:`httpx.Client` pools, one per thread."""

    def __init__(
        self,
        *,
        max_connections: int,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        # A transport handed in (tests) is one object: one pool around it.
        shards = 1 if transport is not None else max(1, max_connections // SHARD_SIZE)
        sizes = [
            max_connections // shards + (1 if i < max_connections % shards else 0)
            for i in range(shards)
        ]
        self.clients = [
            httpx.Client(transport=_gated(transport, size), **options) for size in sizes
        ]
        self.timeout = self.clients[0].timeout
        self._turns = itertools.count()
        self._mine = threading.local()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._mine, "client", None)
        if client is None:
            client = self.clients[next(self._turns) % len(self.clients)]
            self._mine.client = client
        return client

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._client().post(url, **kwargs)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _gated(transport: httpx.BaseTransport | None, size: int) -> GatedTransport:
    """The shard's transport (a pool of ``size`` connections, or the one handed in) behind
    the rate-limit slot check made right before a request is written."""
    if transport is None:
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        transport = httpx.HTTPTransport(limits=limits)
    return GatedTransport(transport)
