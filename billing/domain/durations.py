"""Durations written like ``30s``, ``12h``, ``3d`` (also ``1d12h``, ``500ms``)."""

from __future__ import annotations

import re
from datetime import timedelta

from billing.errors import ConfigurationError

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(text: str) -> timedelta:
    """Parse ``"1d12h"`` into a timedelta; raise ConfigurationError on anything else."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise ConfigurationError("empty duration; write it like 30s, 15m, 12h or 3d")
    position = 0
    total = timedelta(0)
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise ConfigurationError(
            f"invalid duration {text!r}; write it like 30s, 15m, 12h, 3d or 1d12h"
        )
    return total


def format_duration(value: timedelta) -> str:
    """The shortest ``1d12h``-style text for a duration (inverse of parse_duration)."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if milliseconds:
        parts.append(f"{milliseconds}ms")
    return "".join(parts)
