"""What every command of the ``billing`` CLI shares: settings, the app, output, the actor.

``_app()`` builds the composition root for one command; ``_emit`` prints JSON for scripts
or a renderer's text for people; ``_actor()`` names the shell user in the audit log.
Nothing here decides anything about money or talks to the gateway itself.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from billing.errors import ConfigurationError
from billing.settings import Settings, load_settings

if TYPE_CHECKING:
    from billing.bootstrap import App

F = TypeVar("F", bound=Callable[..., Any])

#: An id as the database stores it (BIGINT): larger numbers are a usage error, not a crash.
ID = click.IntRange(1, 2**63 - 1)
#: How far into a list a page may start (the same 64-bit bound).
OFFSET = click.IntRange(0, 2**63 - 1)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    return load_settings()


def _app(*, need_broker: bool = False) -> App:
    from billing.bootstrap import build_app, configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings=settings)
    if need_broker and not settings.redis_url:
        raise ConfigurationError(
            "BILLING_REDIS_URL is required here (e.g. redis://127.0.0.1:6379/0)"
        )
    return build_app(settings)


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(
        function
    )


def reason_option(function: F) -> F:
    return click.option("--reason", required=True, help="Why (kept in the audit log).")(function)


def _actor() -> str:
    """``cli:<login>``: who changed something from this shell, for the audit log."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
    return f"cli:{user}"[:64]
