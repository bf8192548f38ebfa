"""The ``billing`` command line: the click group, its sub-commands and the error handling.

Tables for people, ``--json`` for scripts. Every failure the user can cause ends in one
``error: ...`` line and a non-zero exit (2 for configuration). The commands live in one
module per group (:mod:`.subscriptions`, :mod:`.invoices`, :mod:`.refunds`,
:mod:`.operator`, :mod:`.system`); this module only registers them. It never decides
anything about money.
"""

from __future__ import annotations

import sys

import click

from billing.entrypoints.cli import (
    clock,
    events,
    health,
    invoices,
    operator,
    refunds,
    subscriptions,
    system,
    webhooks,
)
from billing.entrypoints.cli.common import _fail
from billing.errors import BillingError, ConfigurationError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="billing")
def cli() -> None:
    """Recurring billing over an RBS-family acquiring gateway."""


for _command in (
    subscriptions.subscriptions,
    invoices.invoices,
    invoices.retry,
    invoices.refund,
    invoices.reverse,
    operator.resolve,
    operator.audit,
    refunds.refunds,
    system.db,
    system.status,
    system.reconcile,
    system.scheduler,
    system.worker,
    system.sandbox,
    system.callbacks,
    system.admin,
    system.demo,
    events.events,
    webhooks.webhooks,
    clock.clock,
    health.health,
):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(prog_name="billing", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigurationError as exc:
        _fail(str(exc), 2)
    except BillingError as exc:
        _fail(str(exc), 1)


if __name__ == "__main__":
    main()
