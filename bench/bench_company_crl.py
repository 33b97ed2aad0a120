"""A company CA revokes an agent: seconds until her live session is ended and her sign-in refused.

The portal runs on a loopback socket with its own session workers on a worker runner (re-validation every 30 s and
the company-CRL job every ``ca.company_crl_refresh_seconds``). The company CA (shaped like AD CS) publishes a CRL
valid 7 days on a real HTTP server with ETag, Last-Modified and ``Cache-Control: max-age=3600``. Each round: the agent
signs in with a fresh certificate through the proven proxy, the CA publishes a CRL revoking it, and the clock runs
until the session is ended; then one more sign-in must be refused.

Baseline in the same run: the same portal with the checker as it was before (a CRL kept until its nextUpdate),
watched for ``--observe`` seconds: the session is still live then, and would stay so until the CRL's nextUpdate.

    .venv/bin/python -m bench.bench_company_crl --rounds 5
    SOHOGW_CA__COMPANY_CRL_REFRESH_SECONDS=2 .venv/bin/python -m bench.bench_company_crl --rounds 5
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlmodel import select

from certs.revocation import HttpRevocationChecker
from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.pki.service import Actor
from gateway.pki.trust import import_company_ca
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.workers import session_workers
from gateway.settings import load_settings
from gateway.workers.runner import WorkerRunner
from tests.certs.company_ca import CompanyCa
from tests.certs.crl_server import CrlDistributionPoint
from tests.support import portal as whole
from tests.support.portal import Portal

PASSWORDS = {"zhang.wei": "zhang-wei-pw"}
GROUPS = {"zhang.wei": ["SOHO-Agents"]}
CRL_VALIDITY = timedelta(days=7)


def _jobs(keep_until_next_update: bool) -> Any:
    @contextmanager
    def running(app: FastAPI) -> Iterator[Mapping[str, Any]]:
        if keep_until_next_update:  # the checker as it was: a CRL is kept until its own nextUpdate
            app.state.login_services = replace(
                app.state.login_services, revocation=HttpRevocationChecker(max_age=CRL_VALIDITY)
            )
        state = app.state
        workers = session_workers(state.engine, state.login_services, state.settings, state.clock)
        if keep_until_next_update:  # nor was there a worker asking for CRLs again
            workers = [worker for worker in workers if worker.name != "sessions.company_crls"]
        runner = WorkerRunner(workers, state.engine, state.clock)
        runner.start()
        try:
            yield {}
        finally:
            runner.stop()

    return running


def _live(portal: Portal) -> bool:
    with session_scope(portal.engine) as db:
        return db.exec(select(HomeSession).where(HomeSession.state == SessionState.ACTIVE)).first() is not None


def _sign_in(portal: Portal) -> int:
    with portal.client() as client:
        answer = whole.sign_in(client, "zhang.wei", PASSWORDS["zhang.wei"], headers=portal.proxy_headers("zhang.wei"))
    return answer.status_code


def _rounds(directory: Path, rounds: int, observe: float, *, old_checker: bool) -> list[tuple[float | None, int]]:
    """Per round: seconds from publication to the session's end (None: still live after ``observe``) and the
    status of the sign-in tried then."""
    url = f"sqlite:///{directory / 'sohogw.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    company, point = CompanyCa.create(now), CrlDistributionPoint(cache_control="max-age=3600")
    point.publish(company.crl([], now, now + CRL_VALIDITY))
    with session_scope(engine) as db:
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (company.issuing, company.root))
        import_company_ca(db, "Corp AD CS", chain, actor=Actor("bench"), now=now)
    results: list[tuple[float | None, int]] = []
    revoked: list[int] = []
    with whole.serving_portal(
        directory,
        url,
        engine,
        kind=Portal,
        passwords=PASSWORDS,
        groups=GROUPS,
        trusted_proxy=True,
        alongside=_jobs(old_checker),
    ) as portal:
        for _ in range(rounds):
            issued_at = datetime.now(UTC)
            portal.certificates["zhang.wei"] = company.user_certificate(
                "zhang.wei@corp.example", issued_at, crl_url=point.url
            )
            assert _sign_in(portal) == 303 and _live(portal)
            revoked.append(portal.certificates["zhang.wei"].serial_number)
            point.publish(company.crl(revoked, datetime.now(UTC), datetime.now(UTC) + CRL_VALIDITY))
            published = time.monotonic()
            while _live(portal) and time.monotonic() - published < observe:
                time.sleep(0.05)
            ended = None if _live(portal) else time.monotonic() - published
            results.append((ended, _sign_in(portal)))
    point.stop()
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--observe", type=float, default=45.0, help="seconds to wait for the end before giving up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as now_dir, tempfile.TemporaryDirectory() as before_dir:
        results = _rounds(Path(now_dir), args.rounds, args.observe, old_checker=False)
        baseline = _rounds(Path(before_dir), 1, args.observe, old_checker=True)
    ended = [seconds for seconds, _ in results if seconds is not None]
    print(f"company_crl_refresh_seconds: {load_settings().ca.company_crl_refresh_seconds}")
    for number, (seconds, status) in enumerate(results, 1):
        shown = f"{seconds:.1f} s" if seconds is not None else f"not within {args.observe:.0f} s"
        print(f"round {number}: session ended {shown} after publication; next sign-in answered {status}")
    if ended:
        median, worst = statistics.median(ended), max(ended)
        print(f"session ended: median {median:.1f} s, max {worst:.1f} s ({len(ended)}/{len(results)} rounds)")
    seconds, status = baseline[0]
    state = f"ended after {seconds:.1f} s" if seconds is not None else f"still live after {args.observe:.0f} s"
    print(f"baseline (CRL kept until nextUpdate, {CRL_VALIDITY.days} days): session {state}; sign-in answered {status}")


if __name__ == "__main__":
    main()
