"""Whole portal logins per minute on 2 cores against a real Samba AD DC, p50/p99, with a baseline in-process.

A login here is the gateway's own `sessions.login`: client-certificate verification (chain + our register),
LDAPS bind + tokenGroups, policy evaluation, throttling rows and the session + audit rows written and committed
(SQLite, WAL). The baseline is the directory part alone (`Directory.authenticate`) in the same process, so the ratio
says what the gateway adds on top of AD.

Run as root: .venv/bin/python bench/bench_login.py [--seconds 10] [--threads 4]
"""

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.interleave import alternating_throughput
from certs.authority import init_authority
from certs.revocation import HttpRevocationChecker
from gateway.adoption import adopt_legacy_rows
from gateway.db import make_engine, session_scope
from gateway.directory import open_directory
from gateway.migrate import upgrade
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.throttle import ThrottleLimits
from tests.directory import samba
from tests.directory.samba import running_samba_dc


def _figures(name: str, per_minute: float, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<34} {per_minute:>8.0f}/min  p50 {statistics.median(ordered) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with running_samba_dc() as dc, tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        now = datetime.now(UTC)
        authority = init_authority(Path(scratch) / "ca", "bench", "Bench", now)
        with session_scope(engine) as db:
            cert = pki.issue_agent_certificate(
                db,
                authority,
                upn=f"{samba.AGENT}@{samba.REALM.lower()}",
                wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                actor=pki.Actor("bench"),
                now=now,
                lifetime=timedelta(days=1),
                urls=pki.publication_urls("http://bench"),
            ).cert
            import_policy(db, samba.policy_by_dn(), actor="bench", source="", now=now)
        directory = open_directory(dc.settings(pool_size=args.threads))
        services = LoginServices(
            directory, authority, HttpRevocationChecker(), ThrottleLimits(10**9, 10**9), "bench", adopt_legacy_rows
        )
        attempt = LoginRequest(samba.AGENT, samba.PASSWORD, "127.0.0.1", "bench", cert)

        def directory_only() -> None:
            directory.authenticate(samba.AGENT, samba.PASSWORD)

        def whole_login() -> None:
            with session_scope(engine) as db:
                login(db, services, attempt, datetime.now(UTC))

        whole_login()  # warm caches (group SIDs, policy) as a running gateway has them
        figures = alternating_throughput({"baseline": directory_only, "whole": whole_login}, args.threads, args.seconds)
        (base_rate, base_latencies), (rate, latencies) = figures["baseline"], figures["whole"]
        print(f"{args.threads} threads, {args.seconds:.0f} s each in 4 alternating slices, SQLite, Samba AD DC here")
        print(_figures("baseline: directory bind + groups", base_rate, base_latencies))
        print(_figures("whole login (cert+AD+policy+rows)", rate, latencies))
        print(
            f"ratio whole/baseline: rate {rate / base_rate:.2f}x, "
            f"p50 {statistics.median(latencies) / statistics.median(base_latencies):.2f}x"
        )
        directory.close()


if __name__ == "__main__":
    main()
