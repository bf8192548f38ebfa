"""The outbound HTTP adapter for webhooks (httpx): one POST, its status, error and latency.

Shares nothing with the acquirer's client (billing.gateway.client): other hosts, other
timeouts. Decides nothing: whether a status is success and when to try again is
billing.domain.webhooks'. Must never log or return the body, the headers (the signature)
or the receiver's answer body.
"""

from __future__ import annotations

import time

import httpx

from billing.domain.webhooks import SendResult


class HttpWebhookSender:
    def __init__(self) -> None:
        self._client: httpx.Client | None = None

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        started = time.monotonic()
        try:
            response = self._client.post(
                url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
            )
        except httpx.TimeoutException:
            return SendResult(None, f"timed out after {timeout:g} s", _ms(started))
        except httpx.HTTPError as exc:
            return SendResult(
                None, f"{type(exc).__name__}: cannot reach the endpoint", _ms(started)
            )
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return SendResult(response.status_code, error, _ms(started))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
