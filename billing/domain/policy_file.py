"""Reading a dunning policy file (TOML): every key checked, one clear error naming it.

It decides only whether a file is a valid policy and builds the
:class:`~billing.domain.dunning_policy.DunningPolicy` it spells out; the rules themselves
live in :mod:`billing.domain.dunning`. Pure apart from reading the file in
:func:`load_policy`; it never connects anywhere.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

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
    StuckOrderPolicy,
    TransientPolicy,
    UnknownPolicy,
    _fail,
)
from billing.domain.durations import parse_duration
from billing.errors import ConfigurationError

# -- parsing ------------------------------------------------------------------------------


class _Reader:
    """Reads one table of the file, naming ``section.key`` in every error."""

    def __init__(self, prefix: str, section: str, table: Mapping[str, object]) -> None:
        self.prefix = prefix
        self.section = section
        self.table = table
        known = tuple(_SECTIONS[section][1])
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


_Read = Callable[[_Reader, str], object]


def _choice(enum: type[_E]) -> _Read:
    def read(reader: _Reader, key: str) -> object:
        return reader.choice(key, enum)

    return read


#: Every table of the file: the dataclass it fills and how each key is read.
_SECTIONS: dict[str, tuple[type[Any], dict[str, _Read]]] = {
    "soft_decline": (
        SoftDeclinePolicy,
        {
            "retry_after": _Reader.schedule,
            "on_exhausted": _choice(ExhaustedAction),
            "cancel_after": _Reader.optional_duration,
        },
    ),
    "hard_decline": (
        HardDeclinePolicy,
        {"confirm_after": _Reader.duration, "cancel_after": _Reader.optional_duration},
    ),
    "do_not_retry": (DoNotRetryPolicy, {"action": _choice(DoNotRetryAction)}),
    "transient": (
        TransientPolicy,
        {
            "backoff": _Reader.schedule,
            "max_attempts": _Reader.count,
            "give_up_after": _Reader.duration,
        },
    ),
    "unknown": (
        UnknownPolicy,
        {
            "reconcile_backoff": _Reader.schedule,
            "give_up_after": _Reader.duration,
            "operator_recheck_every": _Reader.duration,
            "operator_recheck_for": _Reader.duration,
        },
    ),
    "merchant_config": (MerchantConfigPolicy, {"pause_backoff": _Reader.schedule}),
    "catch_up": (CatchUpPolicy, {"mode": _choice(CatchUpMode)}),
    "card_budget": (CardBudgetPolicy, {"max_attempts": _Reader.count, "window": _Reader.duration}),
    "stuck_orders": (StuckOrderPolicy, {"decline_after": _Reader.optional_duration}),
}
#: Keys whose omission inside their table means "never" rather than the default.
_OMITTED_MEANS_NEVER = frozenset(
    {("soft_decline", "cancel_after"), ("hard_decline", "cancel_after")}
)


def _section(prefix: str, data: Mapping[str, object], name: str) -> _Reader | None:
    if name not in data:
        return None
    table = data[name]
    if not isinstance(table, Mapping):
        raise _fail(name, f"must be a table ([{name}]), got {type(table).__name__}", prefix)
    return _Reader(prefix, name, table)


def _build(data: Mapping[str, object], prefix: str) -> DunningPolicy:
    for name in data:
        if name not in _SECTIONS:
            raise _fail(
                str(name), f"unknown section; expected one of: {', '.join(_SECTIONS)}", prefix
            )
    changes: dict[str, Any] = {}
    for name, (_, fields) in _SECTIONS.items():
        reader = _section(prefix, data, name)
        if reader is None:
            continue
        values = {
            key: read(reader, key)
            for key, read in fields.items()
            if reader.has(key) or (name, key) in _OMITTED_MEANS_NEVER
        }
        if values:
            changes[name] = replace(getattr(DEFAULT_POLICY, name), **values)
    return replace(DEFAULT_POLICY, **changes)


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
