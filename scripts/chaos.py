"""The chaos run, from the command line: "never charge twice, never lose a charge".

    .venv/bin/python scripts/chaos.py --subscriptions 2000 --seconds 90 --seed 7

Needs PostgreSQL (the ``postgres`` user on 127.0.0.1:5432 by default, see --admin-url)
and ``redis-server`` on PATH: the run starts its own Redis on a free loopback port and
never touches the machine's. It creates a database ``billing_chaos_<random>``, migrates
it, runs the sandbox gateway with faults, the scheduler and workers (killed at random),
restarts Redis once, waits for the system to settle, audits the sandbox ledger against
the database, prints the counts and exits 1 if an invariant failed (2 if the run itself
could not be carried out). The database is dropped at the end unless --keep-db.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.chaos.run import ChaosConfig, ChaosError, run_chaos, temporary_database

DEFAULT_ADMIN_URL = os.environ.get(
    "BILLING_CHAOS_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subscriptions", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=90.0, help="length of the chaos phase")
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (each killable)")
    p.add_argument("--threads", type=int, default=8, help="threads per worker")
    p.add_argument("--fault-rate", type=float, default=0.2, help="sandbox fault probability")
    p.add_argument("--timeout-delay", type=float, default=3.0, help="sandbox answer delay")
    p.add_argument(
        "--pause-share",
        type=float,
        default=0.0,
        help="share of worker faults that are SIGSTOP/SIGCONT pauses instead of SIGKILL",
    )
    p.add_argument("--pause-seconds", type=float, default=6.0, help="length of a pause")
    p.add_argument("--settle-timeout", type=float, default=300.0)
    p.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="PostgreSQL admin database")
    p.add_argument("--database-url", default=None, help="use this database, do not create one")
    p.add_argument("--keep-db", action="store_true", help="do not drop the created database")
    p.add_argument("--workdir", type=Path, default=None, help="logs (default: a temp dir)")
    return p


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    if args.database_url:
        yield args.database_url
        return
    with temporary_database(args.admin_url, keep=args.keep_db) as url:
        print(f"database {url.rpartition('/')[2]} created" + (" (kept)" if args.keep_db else ""))
        yield url


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    try:
        with _database(args) as database_url:
            config = ChaosConfig(
                database_url=database_url,
                subscriptions=args.subscriptions,
                seconds=args.seconds,
                seed=seed,
                workers=args.workers,
                worker_threads=args.threads,
                fault_rate=args.fault_rate,
                timeout_delay=args.timeout_delay,
                pause_share=args.pause_share,
                pause_seconds=args.pause_seconds,
                settle_timeout=args.settle_timeout,
                workdir=args.workdir,
            )
            print(
                f"chaos run: {config.subscriptions} subscriptions, {config.seconds:.0f}s of "
                f"chaos, seed {seed}, fault rate {config.fault_rate}"
            )
            result = run_chaos(config, echo=print)
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(result.table())
    print(f"\nlogs: {result.workdir}")
    if not result.ok:
        print("\n" + result.log_tails(60))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
