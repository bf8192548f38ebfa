"""Reading a dunning policy file (TOML): every key checked, one clear error naming it.

It decides only whether a file is a valid policy and builds the
:class:`~billing.domain.dunning_policy.DunningPolicy` it spells out; the rules themselves
live in :mod:`billing.domain.dunning`. Pure apart from reading the file in
:func:`load_policy`; it never connects anywhere.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from billing.domain.dunning_policy import (
    _E,
    _PREFIX,
    DEFAULT_POLICY,
    CardBudgetPolicy,
    CatchUpMode,
    CatchUpPolicy,
    DoNotRetryAction,
    DoNotRetryPolicy,
    DunningPolicy,
    ExhaustedAction,
    HardDeclinePolicy,
    MerchantConfigPolicy,
    SoftDeclinePolicy,
    TransientPolicy,
    UnknownPolicy,
    _fail,
)
from billing.domain.durations import parse_duration
from billing.errors import ConfigurationError

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
