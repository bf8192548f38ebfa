"""Where settings come from besides the environment: the ``.env`` file in the working
directory, and which ``BILLING_*`` names are no setting at all (a warning naming the closest
one).

It only reads names and values; it never validates a value (:mod:`billing.settings` does),
never raises for an unknown name and never prints a value (a ``.env`` holds secrets).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

#: Read from the working directory, below the environment and above the TOML file.
ENV_FILE = ".env"
#: ``BILLING_*`` names that are not settings yet are known (files, compose, tests, benches).
NOT_SETTINGS = (
    "BILLING_CONFIG_FILE",
    "BILLING_ENV_FILE",
    "BILLING_TEST_",
    "BILLING_CHAOS_",
    "BILLING_BENCH_",
    "BILLING_MERCHANTS__",
)


def dotenv_names(path: Path) -> list[str]:
    """The variable names a ``.env`` file sets (none when it does not exist)."""
    if not path.is_file():
        return []
    from dotenv import dotenv_values

    return list(dotenv_values(path))


def known_dotenv_values(settings_cls: type[BaseSettings], path: Path) -> dict[str, Any]:
    """The settings a ``.env`` file sets, by field name; unknown names are left to the
    warning of :func:`load_settings`, empty values count as unset."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    fields = settings_cls.model_fields
    values: dict[str, Any] = {}
    for name, value in dotenv_values(path).items():
        field = name.upper().removeprefix("BILLING_").lower()
        if name.upper().startswith("BILLING_") and field in fields and value:
            values[field] = value
        elif name.upper().startswith("BILLING_MERCHANTS__") and value:
            # BILLING_MERCHANTS__EU__URL=… → merchants.eu.url (a part left out is an error)
            _, account, key = [*field.split("__", 2), "", ""][:3]
            values.setdefault("merchants", {}).setdefault(account, {})[key] = value
    return values


def unknown_names(names: Iterable[str], fields: Iterable[str]) -> list[str]:
    """One line per ``BILLING_*`` name that is none of ``fields``, naming the closest one."""
    known = [f"BILLING_{field.upper()}" for field in fields]
    lines = []
    for name in sorted({n.upper() for n in names}):
        if not name.startswith("BILLING_") or name in known or name.startswith(NOT_SETTINGS):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"unknown setting {name} is ignored{hint}")
    return lines
