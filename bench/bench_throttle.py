"""Guesses that reach the directory when 50 wrong passwords for one account arrive at once, beside the limit.

Each guess is a whole `sessions.login` in its own thread and transaction (released together by a barrier), spelled
in turn as the account name, in upper case and as DOMAIN\\name, each from its own address, against a real Samba AD
DC; counted by a wrapper around the real directory object and by the DC's own badPwdCount. Run on SQLite and, when
PostgreSQL is installed, on PostgreSQL. The baseline, in the same run, is the same 50 guesses with a limit no burst
reaches: what would reach the directory with no throttle in the way.

Run as root, in a network namespace of its own (Samba needs ports 389/636):
    ip netns add bench; ip netns exec bench ip link set lo up
    ip netns exec bench .venv/bin/python -m bench.bench_throttle [--limit 5] [--guesses 50]
"""

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from gateway.db import make_engine
from gateway.directory import open_directory
from gateway.migrate import upgrade
from gateway.sessions.throttle import ThrottleLimits
from tests.directory.samba import SambaDC, running_samba_dc
from tests.gateway.sessions.guess_counting import bad_password_count, new_account, parallel_wrong_passwords
from tests.support.postgres import create_database, postgres_bin_dir, running_postgres


@contextmanager
def databases(scratch: Path) -> Iterator[list[tuple[str, str]]]:
    """(name, migrated URL) of SQLite and, when installed, a PostgreSQL server started for the run."""
    sqlite = f"sqlite:///{scratch}/bench.db"
    upgrade(sqlite)
    if postgres_bin_dir() is None:
        yield [("SQLite", sqlite)]
        return
    with running_postgres() as admin_url:
        postgres = create_database(admin_url, f"bench_{uuid.uuid4().hex[:8]}")
        upgrade(postgres)
        yield [("SQLite", sqlite), ("PostgreSQL", postgres)]


def measure(dc: SambaDC, url: str, limit: int, guesses: int) -> tuple[int, int, float]:
    """(binds counted by the wrapper, the DC's badPwdCount, seconds for the burst) for a fresh account."""
    engine = make_engine(url)
    directory = open_directory(dc.settings(pool_size=8))
    sam = new_account(dc)
    limits = ThrottleLimits(per_account=limit, per_source=10**9, window=timedelta(minutes=15))
    started = time.perf_counter()
    try:
        outcome = parallel_wrong_passwords(engine, directory, sam, limits, guesses)
    finally:
        directory.close()
        engine.dispose()
    return outcome.binds, bad_password_count(dc, sam), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=5, help="throttle_per_account (default: the setting's default)")
    parser.add_argument("--guesses", type=int, default=50)
    args = parser.parse_args()
    with running_samba_dc() as dc, tempfile.TemporaryDirectory() as scratch, databases(Path(scratch)) as urls:
        print(f"{args.guesses} parallel wrong passwords for one account (3 spellings), Samba AD DC on this machine")
        print(f"{'store':<11} {'limit':>5} {'reached (wrapper)':>18} {'badPwdCount':>12} {'burst':>8}")
        for name, url in urls:
            binds, bad, seconds = measure(dc, url, args.limit, args.guesses)
            print(f"{name:<11} {args.limit:>5} {binds:>18} {bad:>12} {seconds:>7.2f}s")
            base_binds, base_bad, base_seconds = measure(dc, url, 10**9, args.guesses)
            print(f"{'  baseline':<11} {'none':>5} {base_binds:>18} {base_bad:>12} {base_seconds:>7.2f}s")


if __name__ == "__main__":
    main()
