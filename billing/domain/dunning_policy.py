"""The dunning policy: what to do after each kind of failed charge, read from TOML.

It also says how a scheduler that fell behind catches up (``[catch_up]``): bill only the
most recent missed period (the default) or every one.

The file has one table per outcome category (see ``config/dunning.toml``)::

    [soft_decline]
    retry_after = ["1d", "3d", "5d", "7d"]
    on_exhausted = "suspend"
    cancel_after = "14d"

A missing table falls back to its defaults; a missing key inside a table falls back to
its default too, except ``cancel_after``, where omitted (or ``""``) means "never".
Unknown tables or keys, wrong types, empty lists and zero or negative durations raise
:class:`~billing.errors.ConfigurationError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from billing.errors import ConfigurationError

_PREFIX = "dunning policy"

_E = TypeVar("_E", bound=StrEnum)


class ExhaustedAction(StrEnum):
    """What happens when the soft-decline retry schedule is used up."""

    SUSPEND = "suspend"
    CANCEL = "cancel"


class DoNotRetryAction(StrEnum):
    """What happens after a lost/stolen/fraud decline."""

    NEEDS_PAYMENT_METHOD = "needs_payment_method"
    CANCEL = "cancel"


@dataclass(frozen=True)
class SoftDeclinePolicy:
    """Insufficient funds, limits: dunning retries later."""

    #: Delay before each retry, counted from the previous declined attempt.
    retry_after: tuple[timedelta, ...] = (
        timedelta(days=1),
        timedelta(days=3),
        timedelta(days=5),
        timedelta(days=7),
    )
    on_exhausted: ExhaustedAction = ExhaustedAction.SUSPEND
    #: A suspended subscription is canceled this long after suspension; None = never.
    cancel_after: timedelta | None = timedelta(days=14)

    def __post_init__(self) -> None:
        _check_schedule("soft_decline.retry_after", self.retry_after)
        _check_optional("soft_decline.cancel_after", self.cancel_after)


@dataclass(frozen=True)
class HardDeclinePolicy:
    """Binding not found/disabled, expired or invalid card: ask for a new card."""

    #: "binding not found" is confirmed once after this delay before asking for a new card.
    confirm_after: timedelta = timedelta(hours=1)
    #: needs_payment_method this long -> canceled; None = never.
    cancel_after: timedelta | None = timedelta(days=30)

    def __post_init__(self) -> None:
        _check_positive("hard_decline.confirm_after", self.confirm_after)
        _check_optional("hard_decline.cancel_after", self.cancel_after)


@dataclass(frozen=True)
class DoNotRetryPolicy:
    """Lost/stolen card, fraud, blacklisted: the card is never charged again."""

    action: DoNotRetryAction = DoNotRetryAction.NEEDS_PAYMENT_METHOD


@dataclass(frozen=True)
class TransientPolicy:
    """Gateway outage: retried soon; not a dunning attempt."""

    #: Delay before the 1st, 2nd... retry; the last value repeats.
    backoff: tuple[timedelta, ...] = (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
    )

    #: This many temporary failures in a row for one invoice (rate-limit give-ups not
    #: counted) and it enters dunning like a soft decline.
    max_attempts: int = 24
    #: ... or once temporary failures have gone on this long.
    give_up_after: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        _check_schedule("transient.backoff", self.backoff)
        _check_count("transient.max_attempts", self.max_attempts)
        _check_positive("transient.give_up_after", self.give_up_after)


@dataclass(frozen=True)
class CardBudgetPolicy:
    """At most ``max_attempts`` charges reaching the bank per card in any ``window``
    (card schemes' reattempt rules: Visa allows 20 in 30 days). A retry that would exceed
    it is pushed to when the window allows it."""

    max_attempts: int = 20
    window: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        _check_count("card_budget.max_attempts", self.max_attempts)
        _check_positive("card_budget.window", self.window)


@dataclass(frozen=True)
class UnknownPolicy:
    """The charge may or may not have gone through: reconcile by order status."""

    #: Delay before the 1st, 2nd... status check; the last value repeats.
    reconcile_backoff: tuple[timedelta, ...] = (
        timedelta(seconds=10),
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
    )
    #: Still unknown this long after the charge was sent -> flagged for an operator.
    give_up_after: timedelta = timedelta(days=3)
    #: An attempt waiting for an operator is still re-checked this often (a late DEPOSITED
    #: is recorded, never hidden) ...
    operator_recheck_every: timedelta = timedelta(hours=6)
    #: ... for this long after it was sent.
    operator_recheck_for: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        _check_schedule("unknown.reconcile_backoff", self.reconcile_backoff)
        _check_positive("unknown.give_up_after", self.give_up_after)
        _check_positive("unknown.operator_recheck_every", self.operator_recheck_every)
        _check_positive("unknown.operator_recheck_for", self.operator_recheck_for)


@dataclass(frozen=True)
class MerchantConfigPolicy:
    """Our credentials/configuration are rejected: charging pauses for everyone."""

    #: Length of the 1st, 2nd... pause; the last value repeats.
    pause_backoff: tuple[timedelta, ...] = (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
    )

    def __post_init__(self) -> None:
        _check_schedule("merchant_config.pause_backoff", self.pause_backoff)


@dataclass(frozen=True)
class StuckOrderPolicy:
    """An order neither paid nor declined (CREATED, PREREGISTERED, PENDING) long after the
    charge was sent is made final with decline.do; once its status says DECLINED the
    invoice is retried with a new orderNumber (not a dunning step)."""

    #: How long after the charge was sent a still-pending order is declined (and the
    #: shortest time between two decline.do calls for it); None = never, wait for an
    #: operator as before.
    decline_after: timedelta | None = timedelta(minutes=30)

    def __post_init__(self) -> None:
        _check_optional("stuck_orders.decline_after", self.decline_after)


class CatchUpMode(StrEnum):
    """Which missed billing periods a scheduler that was down opens."""

    #: Only the most recent one; the earlier ones are recorded as skipped.
    LATEST = "latest"
    #: Every one of them (one charge per missed period).
    ALL = "all"


@dataclass(frozen=True)
class CatchUpPolicy:
    """Periods that fell due while the scheduler was not running."""

    mode: CatchUpMode = CatchUpMode.LATEST


@dataclass(frozen=True)
class DunningPolicy:
    """The whole policy; ``DunningPolicy()`` is the default policy."""

    soft_decline: SoftDeclinePolicy = field(default_factory=SoftDeclinePolicy)
    hard_decline: HardDeclinePolicy = field(default_factory=HardDeclinePolicy)
    do_not_retry: DoNotRetryPolicy = field(default_factory=DoNotRetryPolicy)
    transient: TransientPolicy = field(default_factory=TransientPolicy)
    unknown: UnknownPolicy = field(default_factory=UnknownPolicy)
    merchant_config: MerchantConfigPolicy = field(default_factory=MerchantConfigPolicy)
    catch_up: CatchUpPolicy = field(default_factory=CatchUpPolicy)
    card_budget: CardBudgetPolicy = field(default_factory=CardBudgetPolicy)
    stuck_orders: StuckOrderPolicy = field(default_factory=StuckOrderPolicy)


# -- validation shared by the dataclasses -------------------------------------------------


def _fail(key: str, problem: str, prefix: str = _PREFIX) -> ConfigurationError:
    return ConfigurationError(f"{prefix}: {key}: {problem}")


def _check_positive(key: str, value: timedelta) -> None:
    if value <= timedelta(0):
        raise _fail(key, f"must be a positive duration, got {value}")


def _check_count(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(key, f"must be a whole number of at least 1, got {value!r}")


def _check_optional(key: str, value: timedelta | None) -> None:
    if value is not None:
        _check_positive(key, value)


def _check_schedule(key: str, values: tuple[timedelta, ...]) -> None:
    if not values:
        raise _fail(key, "must list at least one duration")
    for index, value in enumerate(values):
        _check_positive(f"{key}[{index}]", value)


#: The built-in policy; ``config/dunning.toml`` spells out the same values.
DEFAULT_POLICY = DunningPolicy()
