"""The CPU a sign-in costs beyond the directory: the gateway's process and the database server's, per sign-in.

`bench_login.py` runs on two cores shared with Samba, so its ratio moves with Samba's speed and the machine's other
work; this takes the directory out instead. The built-in directory's answers are kept after their first call (its
password hash would otherwise be most of the time), and warm sign-ins, each taking over the session of the one
before as in `bench_login.py`, run in rounds: for each, the CPU of this process (``process_time``) and of every
``postgres`` process on the machine (from ``/proc``: another PostgreSQL running beside counts too) a sign-in, and
the wall time. ``--profile`` prints cProfile's figures instead, on the process's CPU clock.

Run as root: .venv/bin/python -m bench.login_cpu [--database postgres|sqlite] [--sign-ins 300] [--rounds 3]
                                                 [--threads 1] [--profile [--sort cumtime]]
"""

import argparse
import contextlib
import cProfile
import os
import pstats
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_login import fresh_database
from bench.one_agent import one_agent
from gateway.db import make_engine, session_scope
from gateway.directory import Account, Directory, DirectoryUser
from gateway.migrate import upgrade
from gateway.sessions.login import login


class KeptAnswers:
    """The directory's answers to the calls a sign-in makes, each asked once and then kept."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._kept: dict[tuple[Any, ...], Any] = {}

    def _answer(self, call: str, *args: Any) -> Any:
        if (call, *args) not in self._kept:
            self._kept[(call, *args)] = getattr(self._directory, call)(*args)
        return self._kept[(call, *args)]

    def find_account(self, login: str) -> Account:
        account: Account = self._answer("find_account", login)
        return account

    def verify(self, account: Account, password: str) -> DirectoryUser:
        user: DirectoryUser = self._answer("verify", account, password)
        return user

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        user: DirectoryUser = self._answer("lookup", login_or_dn)
        return user

    def __getattr__(self, name: str) -> Any:
        return getattr(self._directory, name)


def _postgres_cpu() -> float:
    """CPU seconds of every process named ``postgres`` now."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _in_threads(work: Any, times: int, threads: int) -> None:
    def loop() -> None:
        for _ in range(times // threads):
            work()

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--sign-ins", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, fresh_database(args.database, scratch) as url:
        upgrade(url)
        engine = make_engine(url)
        services, attempt = one_agent(engine, Path(scratch), KeptAnswers)

        def sign_in() -> None:
            with session_scope(engine) as db:
                login(db, services, attempt, datetime.now(UTC))

        for _ in range(50):
            sign_in()  # warm: rows made, caches filled, statements prepared on the pooled connections
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            profile.enable()  # here: cProfile sees one thread
            for _ in range(args.sign_ins):
                sign_in()
            profile.disable()
            stats = pstats.Stats(profile)
            print(f"{stats.total_calls / args.sign_ins:.0f} Python function calls a sign-in")  # type: ignore[attr-defined]
            stats.sort_stats(args.sort).print_stats(40)
            return
        for _ in range(args.rounds):
            ours, server, wall = time.process_time(), _postgres_cpu(), time.perf_counter()
            _in_threads(sign_in, args.sign_ins, args.threads)
            ours, server = time.process_time() - ours, _postgres_cpu() - server
            each = 1000 / args.sign_ins
            print(
                f"{args.database}, {args.threads} thread(s): a sign-in {ours * each:.3f} ms of our CPU, "
                f"{server * each:.3f} ms of PostgreSQL's, {(time.perf_counter() - wall) * each:.3f} ms of wall "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
