"""What the chaos run bills and how time moves in it: the schedule mix (monthly, weekly,
daily), the time jumps that make several periods of each fall due within minutes, the
worker clock offsets and the dunning policy it runs under. Test machinery, not product code.

Time jumps: the product's clock may drift between hosts, but it cannot run faster than the
database's (send leases are read on the database's clock and compared with each host's
own elapsed time). So time moves the way it does in a real outage: at each jump every
scheduler and worker is killed at once and started again with its clock set that many days
later (``BILLING_CLOCK_OFFSET_SECONDS``) — the whole system was down for that long. The
catch-up policy then opens the latest missed period of each subscription, as it would
after an outage, and the run goes on. Each worker also keeps its own clock offset (drift).
"""

from __future__ import annotations

#: Cron schedules of the run (Europe/Moscow) and their shares.
SCHEDULE_MIX: tuple[tuple[str, str, float], ...] = (
    ("monthly", "0 3 1 * *", 0.5),
    ("weekly", "0 3 * * 1", 0.3),
    ("daily", "0 3 * * *", 0.2),
)
TIMEZONE = "Europe/Moscow"
#: The full run's jumps, in days: a day (a daily period), then a month (every schedule
#: bills again: a 31-day jump always passes a 1st of the month; the days and weeks in
#: between are skipped, as the catch-up policy says). Each jump costs a reboot of every
#: process (10-30 s here) and a new period for nearly every subscription; with more jumps a
#: 2000-subscription run outgrew what this 2-core machine processes before the settle timeout.
FULL_JUMPS: tuple[float, ...] = (1, 31)
#: Per-worker clock offsets in seconds (drift between hosts), cycled over the workers.
FULL_OFFSETS: tuple[float, ...] = (-90.0, 0.0, 90.0)

#: The dunning policy: seconds-scale retries, grace periods that the longer jumps run out
#: (so cancellation happens too), limits on unknown and transient outcomes longer than the
#: whole virtual span (an outcome is settled by status, never handed to an operator because
#: the clock jumped), and a card budget that never pushes a retry past the run.
CHAOS_POLICY = """\
# Written by tests.chaos.run (see tests/chaos/plan.py).
[soft_decline]
retry_after = ["1s", "1s", "1s"]
on_exhausted = "suspend"
cancel_after = "20d"

[hard_decline]
confirm_after = "1s"
cancel_after = "20d"

[do_not_retry]
action = "needs_payment_method"

[transient]
backoff = ["1s", "2s"]
max_attempts = 1000
give_up_after = "3650d"

[unknown]
reconcile_backoff = ["1s", "2s"]
give_up_after = "3650d"

[card_budget]
max_attempts = 10000
window = "30d"

[merchant_config]
pause_backoff = ["2s", "5s"]

[catch_up]
mode = "latest"

[stuck_orders]
decline_after = "5s"
"""


def schedule_name(cron: str) -> str:
    """``monthly``/``weekly``/``daily`` for a cron of the mix (else the cron itself)."""
    for name, expression, _ in SCHEDULE_MIX:
        if expression == cron:
            return name
    return cron


def event_order(jumps: int, postgres_restarts: int, redis_restarts: int) -> list[str]:
    """The chaos phase's system-wide events in order, to be spread evenly over it: the
    PostgreSQL restarts first, then the Redis restarts, the time jumps evenly around them
    (never two events at once)."""
    anchors = ["pg"] * postgres_restarts + ["redis"] * redis_restarts
    events: list[str] = []
    placed = 0
    for i, anchor in enumerate(anchors):
        before = round((i + 1) * jumps / (len(anchors) + 1))
        events += ["jump"] * (before - placed)
        placed = before
        events.append(anchor)
    return events + ["jump"] * (jumps - placed)
