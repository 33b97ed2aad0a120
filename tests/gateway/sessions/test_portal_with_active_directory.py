"""The portal against a real Samba AD DC: nested groups give roles, each account state its own message and reason."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine
from sqlmodel import col, select

from certs.authority import init_authority
from gateway.app import create_app
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.settings import load_settings
from tests.directory import samba
from tests.gateway.sessions.conftest import page_error, sign_in
from tests.gateway.sessions.guess_counting import bad_password_count, new_account
from tests.support.portal import PROXY_ADDRESSES, PROXY_SECRET
from tests.support.server import serving

pytestmark = pytest.mark.e2e


ACCOUNT_STATES = (
    samba.DISABLED,
    samba.LOCKED,
    samba.PASSWORD_EXPIRED,
    samba.MUST_CHANGE,
    samba.ACCOUNT_EXPIRED,
    samba.NIGHT_SHIFT,
)
"""Accounts in a state AD refuses at the bind, each with a certificate of its own."""


@pytest.fixture
def ad_portal(samba_dc: samba.SambaDC, tmp_path: Path, db_url: str, engine: Engine) -> Iterator[tuple[str, dict]]:
    settings = load_settings(
        data_dir=tmp_path,
        database_url=db_url,
        ca={"passphrase": "ad-test"},
        portal={"proxy_secret": PROXY_SECRET, "proxy_addresses": PROXY_ADDRESSES},
    )
    now = datetime.now(UTC)
    authority = init_authority(settings.ca_directory, "ad-test", "Corp Example", now)
    headers = {}
    with session_scope(engine) as db:
        for login in (samba.AGENT, samba.CHINESE, *ACCOUNT_STATES):
            issued = pki.issue_agent_certificate(
                db,
                authority,
                upn=f"{login}@{samba.REALM.lower()}",
                wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                person_id=None,
                actor=pki.Actor("test"),
                now=now,
                lifetime=timedelta(days=1),
                urls=pki.publication_urls("http://x"),
            )
            pem = issued.cert.public_bytes(serialization.Encoding.PEM).decode()
            headers[login] = {"X-SSL-Client-Cert": quote(pem), "X-Sohogw-Proxy-Secret": PROXY_SECRET}
        import_policy(db, samba.policy_by_dn(), actor="test", source="", now=now)
    directory = open_directory(samba_dc.settings())
    app = create_app(settings, engine=engine, authority=authority, directory=directory, run_jobs=False)
    with serving(app) as base_url:
        yield base_url, headers


def _outcome(engine: Engine, login: str) -> str:
    with session_scope(engine) as db:
        event = db.exec(
            select(AuditEvent).where(AuditEvent.actor == login).order_by(col(AuditEvent.seq).desc())
        ).first()
    return event.outcome if event else ""


@pytest.mark.parametrize("login", [samba.AGENT, samba.CHINESE])
def test_agent_in_a_nested_group_signs_in_with_certificate(ad_portal: tuple[str, dict], login: str) -> None:
    base_url, headers = ad_portal
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        answer = sign_in(client, login, samba.PASSWORD, headers=headers[login])
        assert answer.status_code == 303, page_error(answer)
        assert client.get("/", headers={"accept": "text/html"}).headers["location"] == "/agent"


def test_supervisor_lands_on_seats(ad_portal: tuple[str, dict]) -> None:
    base_url, _ = ad_portal
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        assert sign_in(client, samba.SUPERVISOR, samba.PASSWORD).status_code == 303
        assert client.get("/", headers={"accept": "text/html"}).headers["location"] == "/supervisor"


@pytest.mark.parametrize(
    ("login", "reason", "words"),
    [
        (samba.DISABLED, "directory.account_disabled", "disabled"),
        (samba.LOCKED, "directory.account_locked", "locked"),
        (samba.PASSWORD_EXPIRED, "directory.password_expired", "expired"),
        (samba.MUST_CHANGE, "directory.password_must_change", "new password"),
        (samba.ACCOUNT_EXPIRED, "directory.account_expired", "expired"),
        (samba.NIGHT_SHIFT, "directory.outside_logon_hours", "time of day"),
    ],
)
def test_each_account_state_has_its_own_message_and_audit_reason(
    ad_portal: tuple[str, dict], engine: Engine, login: str, reason: str, words: str
) -> None:
    """These accounts are in no SOHO group: without a certificate they would be refused before the bind (the policy
    asks one of a person without a role), so each presents its own (another's is refused before the bind too)."""
    base_url, headers = ad_portal
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        answer = sign_in(client, login, samba.PASSWORD, headers=headers[login])
    assert answer.status_code == 401
    assert words in page_error(answer)
    assert _outcome(engine, login) == reason


def test_without_a_certificate_an_agents_password_never_reaches_the_dc(
    ad_portal: tuple[str, dict], samba_dc: samba.SambaDC, engine: Engine
) -> None:
    """Right or wrong, the same answer before any bind: the DC's own count of bad passwords stays at zero."""
    base_url, _ = ad_portal
    sam = new_account(samba_dc, group="SOHO-Agents")
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        wrong, right = sign_in(client, sam, "Not-The-Passw0rd"), sign_in(client, sam, samba.PASSWORD)
    assert wrong.status_code == right.status_code == 401
    assert page_error(wrong) == page_error(right) and "client certificate is required" in page_error(right)
    assert _outcome(engine, sam) == "certificate_missing"
    assert bad_password_count(samba_dc, sam) == 0


def test_injection_in_the_user_name_is_refused_without_a_match(ad_portal: tuple[str, dict], engine: Engine) -> None:
    base_url, _ = ad_portal
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        answer = sign_in(client, "*)(sAMAccountName=*", samba.PASSWORD)
    assert answer.status_code == 401
    with session_scope(engine) as db:
        row = db.exec(select(AuditEvent).where(AuditEvent.actor == "*)(sAMAccountName=*")).one()
    # No account matched (no person), so no role: the answer any name gets without a certificate.
    assert row.outcome == "certificate_missing" and json.loads(row.detail)["person"] is None
