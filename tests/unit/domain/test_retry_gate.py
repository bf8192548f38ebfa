"""When "retry now" is refused, and the words the console shows for it (table-driven)."""

from __future__ import annotations

import pytest

from billing.domain.retry_gate import RetryFacts, retry_refusal

CASES = [
    (RetryFacts(status="past_due"), None),
    (RetryFacts(status="active", last_category="transient"), None),
    (RetryFacts(status="canceled"), "canceled"),
    (RetryFacts(status="paused"), "paused: resume it first"),
    (RetryFacts(status="past_due", has_open_invoice=False), "no open invoice"),
    (RetryFacts(status="past_due", in_flight=True), "already in flight"),
    (
        RetryFacts(
            status="past_due",
            last_category="do_not_retry",
            last_binding_version=1,
            binding_version=1,
        ),
        "lost, stolen or fraud",
    ),
    (  # a new card was set since: retrying it is fine
        RetryFacts(
            status="needs_payment_method",
            last_category="do_not_retry",
            last_binding_version=1,
            binding_version=2,
        ),
        None,
    ),
    (
        RetryFacts(status="past_due", charging_paused=True, charging_reason="access denied"),
        "charging is paused for everyone: access denied",
    ),
    (  # the first reason wins: resuming would not help while a charge is in flight
        RetryFacts(status="past_due", in_flight=True, charging_paused=True),
        "already in flight",
    ),
]


@pytest.mark.parametrize(("facts", "says"), CASES)
def test_retry_refusal(facts: RetryFacts, says: str | None) -> None:
    refusal = retry_refusal(facts)
    if says is None:
        assert refusal is None
    else:
        assert refusal is not None and says in refusal
