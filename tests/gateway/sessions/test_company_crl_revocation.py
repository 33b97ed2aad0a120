"""A company CA revokes an agent: within seconds her sign-in is refused and her live session is over.

The company CA (tests/certs/company_ca.py, shaped like AD CS) publishes its CRL on a real HTTP server with ETag,
Last-Modified and Cache-Control; the gateway's own session workers run on a runner beside the served app.
"""

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import select

from certs.revocation import HttpRevocationChecker
from gateway.audit.models import AuditEvent
from gateway.cli import cli
from gateway.db import session_scope
from gateway.pki.service import Actor
from gateway.pki.trust import import_company_ca
from gateway.sessions.models import EndReason, HomeSession
from gateway.sessions.revalidation import revalidate
from gateway.sessions.service import OVER
from gateway.sessions.workers import session_workers
from gateway.settings import get_settings
from tests.certs.company_ca import CompanyCa
from tests.certs.crl_server import CrlDistributionPoint
from tests.support import portal as whole
from tests.support.portal import Portal, page_error
from tests.support.workers import alongside_app

REFRESH_SECONDS = 2
PASSWORDS = {"zhang.wei": "zhang-wei-pw"}
GROUPS = {"zhang.wei": ["SOHO-Agents"]}


def _session_jobs(app: FastAPI) -> AbstractContextManager[Mapping[str, Any]]:
    """The app's own session workers (re-validation, company CRLs, the sweep) on a runner, as the lifespan runs them."""
    state = app.state
    return alongside_app(session_workers(state.engine, state.login_services, state.settings, state.clock), state.engine)


@pytest.fixture
def point() -> Iterator[CrlDistributionPoint]:
    served = CrlDistributionPoint(cache_control="max-age=60")  # the server would let us keep it a minute
    yield served
    served.stop()


@pytest.fixture
def company(point: CrlDistributionPoint, engine: Engine) -> CompanyCa:
    now = datetime.now(UTC)
    company = CompanyCa.create(now)
    point.publish(company.crl([], now, now + timedelta(days=7)))
    with session_scope(engine) as db:
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (company.issuing, company.root))
        import_company_ca(db, "Corp AD CS", chain, actor=Actor("test"), now=now)
    return company


@contextmanager
def _serving(
    tmp_path: Path, db_url: str, engine: Engine, company: CompanyCa, point: CrlDistributionPoint, *, jobs: bool
) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=Portal,
        passwords=PASSWORDS,
        groups=GROUPS,
        trusted_proxy=True,
        alongside=_session_jobs if jobs else None,
    ) as running:
        running.certificates["zhang.wei"] = company.user_certificate(
            "zhang.wei@corp.example", datetime.now(UTC), crl_url=point.url
        )
        yield running


@pytest.fixture
def portal(
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    company: CompanyCa,
    point: CrlDistributionPoint,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Portal]:
    """The portal with its session jobs running, asking the company CRL again every REFRESH_SECONDS."""
    monkeypatch.setenv("SOHOGW_CA__COMPANY_CRL_REFRESH_SECONDS", str(REFRESH_SECONDS))
    with _serving(tmp_path, db_url, engine, company, point, jobs=True) as running:
        yield running


@pytest.fixture
def portal_without_jobs(
    tmp_path: Path, db_url: str, engine: Engine, company: CompanyCa, point: CrlDistributionPoint
) -> Iterator[Portal]:
    with _serving(tmp_path, db_url, engine, company, point, jobs=False) as running:
        yield running


def _signed_in(portal: Portal) -> None:
    with portal.client() as agent:
        answer = whole.sign_in(agent, "zhang.wei", PASSWORDS["zhang.wei"], headers=portal.proxy_headers("zhang.wei"))
    assert answer.status_code == 303, page_error(answer)


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _end_reason(portal: Portal) -> EndReason | None:
    """Why the session was ended (ending while its children close, or ended); None while it is live."""
    with session_scope(portal.engine) as db:
        session = db.exec(select(HomeSession).where(HomeSession.login == "zhang.wei")).one()
    return session.end_reason if session.state in OVER else None


def test_company_revocation_ends_the_live_session_and_refuses_sign_in_within_seconds(
    portal: Portal, company: CompanyCa, point: CrlDistributionPoint
) -> None:
    headers = portal.proxy_headers("zhang.wei")
    with portal.client() as agent:
        signed_in = whole.sign_in(agent, "zhang.wei", PASSWORDS["zhang.wei"], headers=headers)
        assert signed_in.status_code == 303, page_error(signed_in)
        assert agent.get("/agent", headers={"accept": "text/html"}).status_code == 200

        _wait_for(lambda: 304 in point.answers)  # the job asks again politely while nothing changes
        now = datetime.now(UTC)
        point.publish(company.crl([portal.certificates["zhang.wei"].serial_number], now, now + timedelta(days=7)))
        revoked_at = time.monotonic()
        while _end_reason(portal) is None and time.monotonic() - revoked_at < 15:
            time.sleep(0.1)
        ended_after = time.monotonic() - revoked_at
        assert _end_reason(portal) is EndReason.CERTIFICATE_REVOKED
        assert ended_after < REFRESH_SECONDS + 3
        assert (
            agent.get("/agent", headers={"accept": "text/html"}).headers["location"]
            == "/login?ended=certificate_revoked"
        )

    with portal.client() as again:
        refused = whole.sign_in(again, "zhang.wei", PASSWORDS["zhang.wei"], headers=headers)
    assert refused.status_code == 401
    assert "revoked" in page_error(refused)


def _rollbacks_audited(portal: Portal) -> list[AuditEvent]:
    with session_scope(portal.engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == "ca.crl_rollback")).all())


def test_a_replayed_crl_from_before_the_revocation_is_refused_and_audited(
    portal: Portal, company: CompanyCa, point: CrlDistributionPoint
) -> None:
    before_revocation = x509.load_der_x509_crl(point.body)  # CRL Number 1, as the company fixture published it
    _signed_in(portal)
    now = datetime.now(UTC)
    revoking = company.crl([portal.certificates["zhang.wei"].serial_number], now, now + timedelta(days=7), number=2)
    point.publish(revoking)
    _wait_for(lambda: _end_reason(portal) is not None)

    asked_before_replay = len(point.answers)
    point.publish(before_revocation)  # an attacker on the plain-HTTP path replays the CRL from before
    _wait_for(lambda: len(point.answers) > asked_before_replay)  # the job has been served the replay
    with portal.client() as again:
        refused = whole.sign_in(again, "zhang.wei", PASSWORDS["zhang.wei"], headers=portal.proxy_headers("zhang.wei"))
    assert refused.status_code == 401
    assert "revoked" in page_error(refused)
    _wait_for(lambda: bool(_rollbacks_audited(portal)))
    audited = _rollbacks_audited(portal)[0]
    assert (audited.actor, audited.target, audited.outcome) == ("system", point.url, "refused")
    assert '"held_crl_number": 2' in audited.detail and '"offered_crl_number": 1' in audited.detail


def test_unknown_revocation_status_keeps_the_session_for_the_grace_then_ends_it(
    portal_without_jobs: Portal, point: CrlDistributionPoint
) -> None:
    portal = portal_without_jobs
    _signed_in(portal)
    point.stop()  # the company's CRL server is gone, and this checker holds no CRL from before
    grace, now = timedelta(minutes=15), datetime.now(UTC)
    kept = revalidate(portal.engine, portal.directory, portal.authority, HttpRevocationChecker(1), now, grace)
    assert kept.ended == 0 and _end_reason(portal) is None
    later = now + grace + timedelta(seconds=1)
    ended = revalidate(portal.engine, portal.directory, portal.authority, HttpRevocationChecker(1), later, grace)
    assert ended.ended == 1
    assert _end_reason(portal) is EndReason.CERTIFICATE_STATUS_UNKNOWN


def test_ca_refresh_on_demand_ends_the_revoked_session_and_says_what_the_crl_holds(
    portal_without_jobs: Portal, company: CompanyCa, point: CrlDistributionPoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = portal_without_jobs
    _signed_in(portal)
    now = datetime.now(UTC)
    point.publish(company.crl([portal.certificates["zhang.wei"].serial_number], now, now + timedelta(days=7)))
    monkeypatch.setenv("SOHOGW_DATA_DIR", str(portal.settings.data_dir))
    monkeypatch.setenv("SOHOGW_DATABASE_URL", portal.settings.db_url)
    monkeypatch.setenv("SOHOGW_CA__PASSPHRASE", whole.CA_PASSPHRASE)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["ca", "refresh"], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"{point.url}: 1 revoked" in result.output
    assert "1 live sessions checked, 1 ended" in result.output
    assert _end_reason(portal) is EndReason.CERTIFICATE_REVOKED
    with session_scope(portal.engine) as db:
        audited = db.exec(select(AuditEvent).where(AuditEvent.action == "ca.refresh")).one()
    assert audited.actor.startswith("cli:") and '"sessions_ended": 1' in audited.detail
