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

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from billing.domain.durations import parse_duration
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


# -- parsing ------------------------------------------------------------------------------

_KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "soft_decline": ("retry_after", "on_exhausted", "cancel_after"),
    "hard_decline": ("confirm_after", "cancel_after"),
    "do_not_retry": ("action",),
    "transient": ("backoff", "max_attempts", "give_up_after"),
    "unknown": (
        "reconcile_backoff",
        "give_up_after",
        "operator_recheck_every",
        "operator_recheck_for",
    ),
    "merchant_config": ("pause_backoff",),
    "catch_up": ("mode",),
    "card_budget": ("max_attempts", "window"),
}


class _Reader:
    """Reads one table of the file, naming ``section.key`` in every error."""

    def __init__(self, prefix: str, section: str, table: Mapping[str, object]) -> None:
        self.prefix = prefix
        self.section = section
        self.table = table
        known = _KNOWN_KEYS[section]
        for key in table:
            if key not in known:
                raise self.fail(key, f"unknown key; expected one of: {', '.join(known)}")

    def fail(self, key: str, problem: str) -> ConfigurationError:
        return _fail(f"{self.section}.{key}", problem, self.prefix)

    def has(self, key: str) -> bool:
        return key in self.table

    def _duration(self, key: str, raw: object) -> timedelta:
        if not isinstance(raw, str):
            raise self.fail(
                key, f'must be a duration string like "3d", got {type(raw).__name__} {raw!r}'
            )
        try:
            value = parse_duration(raw)
        except ConfigurationError as exc:
            raise self.fail(key, exc.message) from None
        if value <= timedelta(0):
            raise self.fail(key, f"must be a positive duration, got {raw!r}")
        return value

    def duration(self, key: str) -> timedelta:
        return self._duration(key, self.table[key])

    def optional_duration(self, key: str) -> timedelta | None:
        """``""`` or an omitted key means "never"."""
        raw = self.table.get(key, "")
        if isinstance(raw, str) and not raw.strip():
            return None
        return self._duration(key, raw)

    def count(self, key: str) -> int:
        raw = self.table[key]
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            raise self.fail(key, f"must be a whole number of at least 1, got {raw!r}")
        return raw

    def schedule(self, key: str) -> tuple[timedelta, ...]:
        raw = self.table[key]
        if not isinstance(raw, list):
            raise self.fail(
                key,
                f'must be a list of durations like ["1m", "5m"], got {type(raw).__name__}',
            )
        if not raw:
            raise self.fail(key, "must list at least one duration")
        return tuple(self._duration(f"{key}[{index}]", item) for index, item in enumerate(raw))

    def choice(self, key: str, enum: type[_E]) -> _E:
        raw = self.table[key]
        allowed = ", ".join(repr(member.value) for member in enum)
        if not isinstance(raw, str):
            raise self.fail(key, f"must be one of {allowed}, got {type(raw).__name__} {raw!r}")
        try:
            return enum(raw.strip().lower())
        except ValueError:
            raise self.fail(key, f"must be one of {allowed}, got {raw!r}") from None


def _section(prefix: str, data: Mapping[str, object], name: str) -> _Reader | None:
    if name not in data:
        return None
    table = data[name]
    if not isinstance(table, Mapping):
        raise _fail(name, f"must be a table ([{name}]), got {type(table).__name__}", prefix)
    return _Reader(prefix, name, table)


def _build(data: Mapping[str, object], prefix: str) -> DunningPolicy:
    for name in data:
        if name not in _KNOWN_KEYS:
            raise _fail(
                str(name), f"unknown section; expected one of: {', '.join(_KNOWN_KEYS)}", prefix
            )
    policy = DEFAULT_POLICY

    soft = policy.soft_decline
    if (reader := _section(prefix, data, "soft_decline")) is not None:
        soft = SoftDeclinePolicy(
            retry_after=reader.schedule("retry_after")
            if reader.has("retry_after")
            else soft.retry_after,
            on_exhausted=reader.choice("on_exhausted", ExhaustedAction)
            if reader.has("on_exhausted")
            else soft.on_exhausted,
            cancel_after=reader.optional_duration("cancel_after"),
        )

    hard = policy.hard_decline
    if (reader := _section(prefix, data, "hard_decline")) is not None:
        hard = HardDeclinePolicy(
            confirm_after=reader.duration("confirm_after")
            if reader.has("confirm_after")
            else hard.confirm_after,
            cancel_after=reader.optional_duration("cancel_after"),
        )

    never = policy.do_not_retry
    if (reader := _section(prefix, data, "do_not_retry")) is not None and reader.has("action"):
        never = DoNotRetryPolicy(action=reader.choice("action", DoNotRetryAction))

    transient = policy.transient
    if (reader := _section(prefix, data, "transient")) is not None:
        transient = TransientPolicy(
            backoff=reader.schedule("backoff") if reader.has("backoff") else transient.backoff,
            max_attempts=reader.count("max_attempts")
            if reader.has("max_attempts")
            else transient.max_attempts,
            give_up_after=reader.duration("give_up_after")
            if reader.has("give_up_after")
            else transient.give_up_after,
        )

    budget = policy.card_budget
    if (reader := _section(prefix, data, "card_budget")) is not None:
        budget = CardBudgetPolicy(
            max_attempts=reader.count("max_attempts")
            if reader.has("max_attempts")
            else budget.max_attempts,
            window=reader.duration("window") if reader.has("window") else budget.window,
        )

    unknown = policy.unknown
    if (reader := _section(prefix, data, "unknown")) is not None:
        unknown = UnknownPolicy(
            reconcile_backoff=reader.schedule("reconcile_backoff")
            if reader.has("reconcile_backoff")
            else unknown.reconcile_backoff,
            give_up_after=reader.duration("give_up_after")
            if reader.has("give_up_after")
            else unknown.give_up_after,
            operator_recheck_every=reader.duration("operator_recheck_every")
            if reader.has("operator_recheck_every")
            else unknown.operator_recheck_every,
            operator_recheck_for=reader.duration("operator_recheck_for")
            if reader.has("operator_recheck_for")
            else unknown.operator_recheck_for,
        )

    merchant = policy.merchant_config
    if (reader := _section(prefix, data, "merchant_config")) is not None and reader.has(
        "pause_backoff"
    ):
        merchant = MerchantConfigPolicy(pause_backoff=reader.schedule("pause_backoff"))

    catch_up = policy.catch_up
    if (reader := _section(prefix, data, "catch_up")) is not None and reader.has("mode"):
        catch_up = CatchUpPolicy(mode=reader.choice("mode", CatchUpMode))

    return DunningPolicy(
        soft_decline=soft,
        hard_decline=hard,
        do_not_retry=never,
        transient=transient,
        unknown=unknown,
        merchant_config=merchant,
        catch_up=catch_up,
        card_budget=budget,
    )


def parse_policy(source: str | Mapping[str, object], *, origin: str | None = None) -> DunningPolicy:
    """Build a policy from TOML text or an already-parsed mapping.

    ``origin`` (a file name) is added to error messages.
    """
    prefix = f"{_PREFIX} {origin}" if origin else _PREFIX
    if isinstance(source, str):
        try:
            data: Mapping[str, object] = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{prefix}: invalid TOML: {exc}") from None
    elif isinstance(source, Mapping):
        data = source
    else:
        raise ConfigurationError(
            f"{prefix}: expected TOML text or a mapping, got {type(source).__name__}"
        )
    return _build(data, prefix)


def load_policy(path: str | Path) -> DunningPolicy:
    """Read and validate a policy file; ConfigurationError if missing or invalid."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{_PREFIX}: file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{_PREFIX}: cannot read {str(file)!r}: {exc}") from None
    return parse_policy(text, origin=str(file))
