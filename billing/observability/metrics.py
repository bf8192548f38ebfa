"""The project's Prometheus metric objects, defined once (every process imports these).

Counters and histograms here are updated on the hot path and must stay cheap: an
in-memory increment, never a database or Redis query. Gauges that describe the database
(backlog, open invoices, attempts needing an operator, charging paused) are not here:
they are computed at scrape time by :mod:`billing.services.read.gauges`.

In a dramatiq worker process ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is
imported (see ``workers/worker.py``), so the values land in dramatiq's Prometheus
middleware files and its exposition server (port 9191) serves them with its own.

Labels are bounded sets (gateway method names, outcome categories and reasons, result
kinds): never an id, an order number or anything a customer typed.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CHARGE_ATTEMPTS = Counter(
    "billing_charge_attempts",
    "Charge attempts settled, by outcome category and reason.",
    ["category", "reason"],
)

GATEWAY_REQUEST_SECONDS = Histogram(
    "billing_gateway_request_seconds",
    "Gateway API calls by method and transport outcome.",
    ["method", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

DOUBLE_CHARGES = Counter(
    "billing_double_charges",
    "A second deposited attempt was found for an invoice (listed for a refund).",
)

WEBHOOK_DELIVERIES = Counter(
    "billing_webhook_deliveries",
    "Outgoing webhook deliveries to the SaaS backend, by outcome (delivered, failed, gave_up).",
    ["outcome"],
)

SCHEDULER_PASSES = Counter(
    "billing_scheduler_passes",
    "Scheduler passes, by result (ok, failed).",
    ["result"],
)

SCHEDULER_LAST_PASS = Gauge(
    "billing_scheduler_last_pass_timestamp_seconds",
    "Unix time at which the scheduler's last successful pass ended.",
)

#: Transport outcome label of a gateway call, by the result's type name.
GATEWAY_OUTCOMES = {
    "JsonReply": "answered",
    "HttpErrorReply": "http_error",
    "NotJsonReply": "not_json",
    "ConnectionFailed": "connect_failed",
    "ReadTimedOut": "read_timeout",
    "ConnectionLost": "connection_lost",
}


def observe_gateway_call(method: str, result_kind: str, seconds: float) -> None:
    """Record one gateway call (cheap: a histogram observation)."""
    outcome = GATEWAY_OUTCOMES.get(result_kind, "other")
    GATEWAY_REQUEST_SECONDS.labels(method=method, outcome=outcome).observe(seconds)


def count_charge_outcome(category: str, reason: str) -> None:
    """Record one settled attempt (cheap: a counter increment). ``reason`` is cut to 64."""
    CHARGE_ATTEMPTS.labels(category=category, reason=reason[:64]).inc()
