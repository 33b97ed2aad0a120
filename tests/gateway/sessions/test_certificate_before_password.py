"""A certificate is matched to the account the typed name finds before the password goes anywhere.

With agent A's own valid certificate and agent B's name, B's right password, B's wrong password and a name no
account has get one answer ("the certificate belongs to another account"): the holder of a certificate learns
neither B's password nor whether a name exists. The directory sees no bind for B (the wrapper counts every call
that sends a password; on Samba AD, B's own ``badPwdCount`` stays 0) and B's throttle is not spent. A's own
certificate with A's name still signs in, so the refusals are the match's, not a broken certificate's. Each
directory is the real one: the built-in file, slapd, a Samba AD DC.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import Engine
from sqlmodel import col, select

from certs.authority import init_authority
from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import Directory, open_directory
from gateway.directory.settings import DirectorySettings
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions import throttle
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.models import LoginThrottle
from policy import DEFAULT_POLICY_FILE
from tests.directory import samba
from tests.directory import slapd as openldap
from tests.gateway.sessions.guess_counting import CountingDirectory, bad_password_count, new_account
from tests.support.portal import write_builtin_directory

NOW = datetime.now(UTC)
LIMITS = throttle.ThrottleLimits(per_account=3, per_source=100, window=timedelta(minutes=15))
MISMATCH = ("certificate_mismatch", "the certificate belongs to another account")
WRONG = "Not-The-Passw0rd"


@dataclass(frozen=True)
class Colleagues:
    """Two agents of one directory: ``holder`` has a certificate, ``other`` is the one whose password is tried."""

    directory: Directory
    policy: str
    holder: str
    holder_upn: str
    other: str
    password: dict[str, str]
    bad_passwords_seen: Callable[[str], int] | None = None
    """The directory's own count of wrong passwords for an account, where it keeps one (AD's badPwdCount)."""


def _builtin(tmp_path: Path) -> Iterator[Colleagues]:
    passwords = {"agent1": "agent-one-pw", "agent2": "agent-two-pw"}
    path = tmp_path / "directory.json"
    write_builtin_directory(path, passwords, {"agent1": ["SOHO-Agents"], "agent2": ["SOHO-Agents"]})
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=path))
    policy = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    yield Colleagues(directory, policy, "agent1", "agent1@corp.example", "agent2", passwords)
    directory.close()


def _openldap(slapd: openldap.Slapd) -> Iterator[Colleagues]:
    directory = open_directory(slapd.settings())
    agents = openldap.group_dn("soho-agents")
    policy = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace("\n  SOHO-Agents:\n", f'\n  "{agents}":\n')
    passwords = {openldap.AGENT: openldap.PASSWORD, openldap.CHINESE: openldap.PASSWORD}
    holder_upn = f"{openldap.AGENT}@soho.example"
    yield Colleagues(directory, policy, openldap.AGENT, holder_upn, openldap.CHINESE, passwords)
    directory.close()


def _active_directory(dc: samba.SambaDC) -> Iterator[Colleagues]:
    other = new_account(dc, group="SOHO-Agents")  # a fresh account: its badPwdCount starts at 0
    directory = open_directory(dc.settings())
    passwords = {samba.AGENT: samba.PASSWORD, other: samba.PASSWORD}
    holder_upn = f"{samba.AGENT}@{samba.REALM.lower()}"
    yield Colleagues(
        directory,
        samba.policy_by_dn(),
        samba.AGENT,
        holder_upn,
        other,
        passwords,
        bad_passwords_seen=lambda sam: bad_password_count(dc, sam),
    )
    directory.close()


@pytest.fixture(
    params=[
        "builtin",
        pytest.param("openldap", marks=pytest.mark.e2e),
        pytest.param("active_directory", marks=pytest.mark.e2e),
    ]
)
def colleagues(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Colleagues]:
    if request.param == "builtin":
        yield from _builtin(tmp_path)
    elif request.param == "openldap":
        yield from _openldap(request.getfixturevalue("slapd"))
    else:
        yield from _active_directory(request.getfixturevalue("samba_dc"))


@dataclass(frozen=True)
class Gateway:
    services: LoginServices
    counting: CountingDirectory
    holders_certificate: x509.Certificate


@pytest.fixture
def gateway(engine: Engine, colleagues: Colleagues, tmp_path: Path) -> Gateway:
    authority = init_authority(tmp_path / "ca", "test-ca", "Corp Example", NOW)
    with session_scope(engine) as db:
        import_policy(db, colleagues.policy, actor="test", source="", now=NOW)
        issued = pki.issue_agent_certificate(
            db,
            authority,
            upn=colleagues.holder_upn,
            account=colleagues.holder,
            wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            person_id=None,
            actor=pki.Actor("test"),
            now=NOW,
            lifetime=timedelta(days=1),
            urls=pki.publication_urls("http://x"),
        )
    counting = CountingDirectory(colleagues.directory)
    services = LoginServices(counting, authority, HttpRevocationChecker(), LIMITS, "node-1", LegacyAdoption())
    return Gateway(services, counting, issued.cert)


def _sign_in(engine: Engine, gateway: Gateway, name: str, password: str) -> tuple[str, str]:
    """A sign-in with the holder's certificate, committed as the route commits it: (reason, message) of the answer."""
    request = LoginRequest(name, password, "203.0.113.9", client_cert=gateway.holders_certificate)
    with session_scope(engine) as db:
        try:
            login(db, gateway.services, request, NOW)
        except LoginFailed as refused:
            return refused.reason, refused.message
    return "signed_in", ""


def test_another_accounts_password_never_meets_the_directory_and_gets_one_answer(
    engine: Engine, colleagues: Colleagues, gateway: Gateway
) -> None:
    other = colleagues.other
    person = colleagues.directory.find_account(other).person_id
    answers = [
        _sign_in(engine, gateway, other, WRONG),
        _sign_in(engine, gateway, other, colleagues.password[other]),
        _sign_in(engine, gateway, "nobody.has.this.name", WRONG),
    ]
    assert answers == [MISMATCH] * 3
    assert gateway.counting.binds == 0
    if colleagues.bad_passwords_seen is not None:
        assert colleagues.bad_passwords_seen(other) == 0
    with session_scope(engine) as db:
        reserved = {row.key for row in db.exec(select(LoginThrottle)) if row.attempts}
        refusals = db.exec(
            select(AuditEvent.outcome, AuditEvent.detail)
            .where(AuditEvent.action == "session.login")
            .order_by(col(AuditEvent.seq))
        ).all()
    assert reserved == set()  # no password was tried: nothing counts on B (nor on the address)
    assert [outcome for outcome, _ in refusals] == ["certificate_mismatch"] * 3
    assert json.loads(refusals[0][1])["person"] == person  # audited with the person the name found

    holder = colleagues.holder
    assert _sign_in(engine, gateway, holder, colleagues.password[holder]) == ("signed_in", "")
    assert gateway.counting.binds == 1


def test_a_certificate_bound_to_another_person_is_refused_whatever_names_it_carries(
    engine: Engine, colleagues: Colleagues, gateway: Gateway, tmp_path: Path
) -> None:
    """Our register binds each certificate to the person it was issued to (migration 0025): one that names the holder
    but was issued to the other person (an admin who typed a colleague's UPN, a UPN handed on after its holder left)
    is refused before the password, as a certificate of another account; the holder's own certificate, bound to the
    holder, still signs in. Before the binding was read at sign-in, the names alone let it in."""
    directory = colleagues.directory
    holder, other = directory.find_account(colleagues.holder), directory.find_account(colleagues.other)

    def issued_to(person_id: str) -> x509.Certificate:
        with session_scope(engine) as db:
            return pki.issue_agent_certificate(
                db,
                gateway.services.authority,  # type: ignore[arg-type]
                upn=colleagues.holder_upn,
                account=colleagues.holder,
                wireguard_key="HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
                person_id=person_id,
                actor=pki.Actor("test"),
                now=NOW,
                lifetime=timedelta(days=1),
                urls=pki.publication_urls("http://x"),
            ).cert

    password = colleagues.password[colleagues.holder]
    foreign = Gateway(gateway.services, gateway.counting, issued_to(other.person_id))
    assert _sign_in(engine, foreign, colleagues.holder, password) == MISMATCH
    assert gateway.counting.binds == 0
    with session_scope(engine) as db:
        detail = db.exec(
            select(AuditEvent.detail).where(AuditEvent.action == "session.login").order_by(col(AuditEvent.seq).desc())
        ).first()
    assert detail is not None and json.loads(detail)["certificate_person"] == other.person_id

    own = Gateway(gateway.services, gateway.counting, issued_to(holder.person_id))
    assert _sign_in(engine, own, colleagues.holder, password) == ("signed_in", "")
