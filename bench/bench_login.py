"""Whole portal logins per minute on 2 cores against a real Samba AD DC, p50/p99, with a baseline in-process.

A login here is the gateway's own `sessions.login`: client-certificate verification (chain + our register),
LDAPS bind + tokenGroups, policy evaluation, throttling rows and the session + audit rows written and committed
(SQLite in WAL, or a PostgreSQL server the bench starts). The baseline is the directory part alone
(`Directory.authenticate`) in the same process, so the ratio says what the gateway adds on top of AD. Then both run
paced at ``--rate`` logins a minute, and their p99 is reported: the latency a person waits at that load, queueing
included (timed from when the login was due, not from when a thread got to it).

With ``--people N`` the logins go round N agents (``agent.ok`` and N-1 more added to the DC), as at a shift's start;
by default every login is the same person's, each taking over the session of the one before, taking turns on the
person's throttle rows and take-over. Measured on PostgreSQL, quiet machine: 8 people 0.77x, 1 person 0.76x, so those
turns are not what the ratio pays for.

Run as root: .venv/bin/python -m bench.bench_login [--seconds 10] [--threads 4] [--database sqlite|postgres]
                                                   [--rate 1000 --paced-seconds 30] [--people 1]
"""

import argparse
import base64
import contextlib
import itertools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.interleave import alternating_throughput
from certs.authority import init_authority
from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import make_engine, session_scope
from gateway.directory import open_directory
from gateway.migrate import upgrade
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.throttle import ThrottleLimits
from tests.directory import samba
from tests.directory.samba import running_samba_dc
from tests.support.postgres import create_database, running_postgres


def _figures(name: str, per_minute: float, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<34} {per_minute:>8.0f}/min  p50 {statistics.median(ordered) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"
    )


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def paced(work: Callable[[], None], per_minute: float, seconds: float, threads: int) -> list[float]:
    """Start ``work`` every 60/``per_minute`` seconds on a pool of ``threads``; each latency runs from when its
    start was due, so a login that waited for a free thread counts its wait."""
    interval = 60 / per_minute
    latencies: list[float] = []
    lock = threading.Lock()

    def one(due: float) -> None:
        work()
        with lock:
            latencies.append(time.perf_counter() - due)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        first = time.perf_counter()
        for n in range(int(seconds / interval)):
            due = first + n * interval
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(one, due)
    return latencies


@contextlib.contextmanager
def fresh_database(kind: str, scratch: str) -> Iterator[str]:
    """A fresh database of ``kind`` (sqlite, or postgres: a server started for it) for one bench run."""
    if kind == "sqlite":
        yield f"sqlite:///{scratch}/bench.db"
        return
    with running_postgres() as admin:
        yield create_database(admin, "sohogw_bench_login")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=1000, help="logins a minute for the paced run")
    parser.add_argument("--paced-seconds", type=float, default=30)
    parser.add_argument("--people", type=int, default=1, help="agents the logins go round")
    args = parser.parse_args()
    with (
        running_samba_dc() as dc,
        tempfile.TemporaryDirectory() as scratch,
        fresh_database(args.database, scratch) as url,
    ):
        upgrade(url)
        engine = make_engine(url)
        now = datetime.now(UTC)
        authority = init_authority(Path(scratch) / "ca", "bench", "Bench", now)
        agents = [samba.AGENT, *(f"bench.agent{n}" for n in range(1, args.people))]
        samba.add_agents(dc, agents[1:])
        with session_scope(engine) as db:
            certificates = [
                pki.issue_agent_certificate(
                    db,
                    authority,
                    upn=f"{agent}@{samba.REALM.lower()}",
                    wireguard_key=base64.b64encode(os.urandom(32)).decode(),
                    person_id=None,
                    actor=pki.Actor("bench"),
                    now=now,
                    lifetime=timedelta(days=1),
                    urls=pki.publication_urls("http://bench"),
                ).cert
                for agent in agents
            ]
            import_policy(db, samba.policy_by_dn(), actor="bench", source="", now=now)
        directory = open_directory(dc.settings(pool_size=args.threads))
        services = LoginServices(
            directory, authority, HttpRevocationChecker(), ThrottleLimits(10**9, 10**9), "bench", LegacyAdoption()
        )
        attempts = [
            LoginRequest(agent, samba.PASSWORD, "127.0.0.1", "bench", cert)
            for agent, cert in zip(agents, certificates, strict=True)
        ]
        turns = itertools.count()  # shared by the threads: each login is the next agent's

        def directory_only() -> None:
            directory.authenticate(agents[next(turns) % len(agents)], samba.PASSWORD)

        def whole_login() -> None:
            with session_scope(engine) as db:
                login(db, services, attempts[next(turns) % len(attempts)], datetime.now(UTC))

        for _ in agents:  # warm caches (group SIDs, policy) as a running gateway has them
            whole_login()
        figures = alternating_throughput({"baseline": directory_only, "whole": whole_login}, args.threads, args.seconds)
        (base_rate, base_latencies), (rate, latencies) = figures["baseline"], figures["whole"]
        database = "SQLite" if args.database == "sqlite" else "PostgreSQL"
        print(
            f"{args.threads} threads, {args.seconds:.0f} s each in 4 alternating slices, {database}, Samba AD DC here, "
            f"{len(agents)} {'person' if len(agents) == 1 else 'people'}"
        )
        print(_figures("baseline: directory bind + groups", base_rate, base_latencies))
        print(_figures("whole login (cert+AD+policy+rows)", rate, latencies))
        print(
            f"ratio whole/baseline: rate {rate / base_rate:.2f}x, "
            f"p50 {statistics.median(latencies) / statistics.median(base_latencies):.2f}x"
        )
        half = args.paced_seconds / 2  # each side twice, alternating, as above
        runs: dict[str, list[float]] = {"baseline": [], "whole": []}
        for order in (("baseline", "whole"), ("whole", "baseline")):
            for name in order:
                runs[name] += paced(
                    directory_only if name == "baseline" else whole_login, args.rate, half, args.threads
                )
        print(
            f"paced at {args.rate:.0f}/min for {args.paced_seconds:.0f} s each: "
            f"p99 baseline {_p99(runs['baseline']) * 1000:.1f} ms, whole login {_p99(runs['whole']) * 1000:.1f} ms"
        )
        directory.close()


if __name__ == "__main__":
    main()
