"""Against a real Samba AD DC, every spelling AD accepts for one account is ONE person at the portal.

Case, ``DOMAIN\\name``, the UPN, the implicit UPN ``name@<dns domain>`` and the sAMAccountName: one live session at a
time, one TOTP secret (a second spelling is asked for the code, never offered a fresh enrolment), one throttle, and
an HR suspension ends the session whichever spelling opened it.
"""

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from cryptography import x509
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.enrollment.handoff import HandOff, finish_owed_revocations, withdraw_seat
from gateway.enrollment.models import Application, ApplicationState
from gateway.enrollment.service import start_application
from gateway.enrollment.settings import EnrollmentSettings
from gateway.pki import service as pki
from gateway.pki.models import IssuedCertificate
from gateway.sessions.models import HomeSession, SessionState
from tests.directory import samba
from tests.directory.samba import SambaDC, group_dn, user_dn
from tests.support.portal import (
    Portal,
    csrf_of,
    enrolment_code,
    page_error,
    passed_second_factor,
    redeem_enrolment_code,
    serving_portal,
    sign_in,
)
from tests.support.tcp_relay import TcpRelay, tcp_relay
from tests.vpn.keys import key_pair

pytestmark = pytest.mark.e2e
HTML = {"accept": "text/html"}

PERSON = "one.person"  # a supervisor; its explicit UPN is elsewhere, so one.person@soho.test is the implicit UPN
PERSON_UPN = "one.person.upn@corp.example"
ADMIN = "one.admin"  # a security admin: TOTP required
SPELLINGS = [
    PERSON,
    PERSON.upper(),
    f"{samba.NETBIOS}\\{PERSON}",
    f"soho\\{PERSON.title()}",
    PERSON_UPN,
    f"{PERSON}@soho.test",
    f"{PERSON.upper()}@SOHO.TEST",
]
POLICY = f"""\
version: 1
roles:
  supervisor: {{require_client_certificate: false}}
  security_admin: {{require_client_certificate: false, require_totp: true}}
groups:
  "{group_dn("SOHO-Supervisors")}": {{roles: [supervisor]}}
  "{group_dn("SOHO-Security")}": {{roles: [security_admin]}}
"""


def fresh_person(dc: SambaDC) -> tuple[str, list[str]]:
    """A new supervisor account and its spellings; guessing tests need their own (AD locks out after 5 guesses)."""
    sam = f"probe-{uuid.uuid4().hex[:8]}"
    _add_user(dc, sam, f"{sam}.upn@corp.example", "SOHO-Supervisors")
    return sam, [sam, sam.upper(), f"SOHO\\{sam}", f"{sam}.upn@corp.example", f"{sam}@soho.test"]


def _add_user(dc: SambaDC, sam: str, upn: str, group: str) -> None:
    conn = dc.admin()
    added = conn.add(user_dn(sam), attributes={
        "objectClass": ["user"], "sAMAccountName": sam, "userPrincipalName": upn, "displayName": sam,
        "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"), "userAccountControl": "512",
    })  # fmt: skip
    if added:
        conn.modify(group_dn(group), {"member": [("MODIFY_ADD", [user_dn(sam)])]})
    conn.unbind()


@pytest.fixture(scope="module")
def people(samba_dc: SambaDC) -> SambaDC:
    _add_user(samba_dc, PERSON, PERSON_UPN, "SOHO-Supervisors")
    _add_user(samba_dc, ADMIN, f"{ADMIN}@soho.test", "SOHO-Security")
    return samba_dc


@pytest.fixture
def portal(people: SambaDC, tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    directory = open_directory(people.settings())
    with serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=Portal,
        passwords={},
        groups={},
        directory=directory,
        policy=POLICY,
        trusted_proxy=True,  # for a sign-in with a certificate of the test's making
    ) as running:
        yield running
    directory.close()


def _sessions(engine: Engine, *states: SessionState) -> list[HomeSession]:
    with session_scope(engine) as db:
        query = select(HomeSession).where(col(HomeSession.state).in_(states)).order_by(col(HomeSession.created_at))
        return list(db.exec(query).all())


def test_every_spelling_is_one_person_with_one_live_session(portal: Portal) -> None:
    clients = [portal.client() for _ in SPELLINGS]
    try:
        for client, spelling in zip(clients, SPELLINGS, strict=True):
            answer = sign_in(client, spelling, samba.PASSWORD)
            assert answer.status_code == 303, (spelling, page_error(answer))
            live = _sessions(portal.engine, SessionState.ACTIVE)
            assert [s.login for s in live] == [PERSON], spelling  # the one before was replaced
        people = {s.person_id for s in _sessions(portal.engine, SessionState.ACTIVE, SessionState.ENDING)}
        assert len(people) == 1
        for client in clients[:-1]:
            assert client.get("/", headers=HTML).headers["location"] == "/login"
        assert clients[-1].get("/", headers=HTML).headers["location"] == "/supervisor"
    finally:
        for client in clients:
            client.close()


def _second_factor_page(client: httpx.Client, spelling: str) -> httpx.Response:
    assert sign_in(client, spelling, samba.PASSWORD).headers["location"] == "/login/second-factor"
    return client.get("/login/second-factor", headers=HTML)


def test_a_second_spelling_is_asked_for_the_code_never_offered_a_fresh_enrolment(portal: Portal) -> None:
    with portal.client() as owner:
        page = _second_factor_page(owner, ADMIN)
        assert 'id="enrolment-code"' in page.text and "totp-secret" not in page.text  # the password alone: no QR
        assert redeem_enrolment_code(owner, enrolment_code(portal.engine, portal.directory, ADMIN)).status_code == 303
        page = owner.get("/login/second-factor", headers=HTML)
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret, page.text
        totp = pyotp.TOTP(secret.group(1))
        done = owner.post("/login/second-factor", data={"code": totp.now(), "csrf": csrf_of(page)}, headers=HTML)
        assert passed_second_factor(done), done.text
    for spelling in (ADMIN.upper(), f"SOHO\\{ADMIN}", f"{ADMIN}@soho.test"):
        with portal.client() as intruder:
            page = _second_factor_page(intruder, spelling)
            assert 'id="code"' in page.text, spelling
            assert "totp-secret" not in page.text and 'id="enrolment-code"' not in page.text, spelling


def test_wrong_passwords_under_any_spelling_share_one_throttle_and_are_audited(portal: Portal, people: SambaDC) -> None:
    limit = portal.settings.portal.throttle_per_account
    _, spellings = fresh_person(people)
    with portal.client() as client:
        for attempt in range(limit):
            wrong = sign_in(client, spellings[attempt % len(spellings)], "Not-The-Passw0rd")
            assert wrong.status_code == 401, page_error(wrong)
        refused = sign_in(client, spellings[-1].upper(), samba.PASSWORD)
        assert refused.status_code == 429 and "Too many" in page_error(refused)
    with session_scope(portal.engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == "session.login")).all()
    outcomes = [(r.outcome, json.loads(r.detail).get("person")) for r in rows]
    person = outcomes[0][1]
    assert person and outcomes == [("directory.wrong_password", person)] * limit + [("throttled", person)]


def test_a_suspension_ends_the_session_whichever_spelling_opened_it(portal: Portal) -> None:
    with portal.client() as client:
        assert sign_in(client, f"soho\\{PERSON.upper()}", samba.PASSWORD).status_code == 303
        now = datetime.now(UTC)
        handoff = HandOff(portal.directory, None, timedelta(hours=24), "SOHO-Agents")
        with session_scope(portal.engine) as db:
            application = start_application(
                db, handoff, PERSON_UPN.upper(), callback_number="", settings=EnrollmentSettings(), actor="hr", now=now
            )
            withdraw_seat(db, application, handoff, actor="hr", now=now, why="suspended")
        ended = _sessions(portal.engine, SessionState.ENDING)
        assert [(s.login, s.end_reason) for s in ended] == [(PERSON, "hr_suspended")]
        assert client.get("/", headers=HTML).headers["location"] == "/login"


def _issue(portal: Portal, upn: str, now: datetime, person_id: str | None = None) -> str:
    """An agent certificate for ``upn``; bound to ``person_id`` when given, else as one issued before 0025."""
    with session_scope(portal.engine) as db:
        return pki.issue_agent_certificate(
            db,
            portal.authority,
            upn=upn,
            wireguard_key=key_pair()[1],
            person_id=person_id,
            actor=pki.Actor("security-admin"),
            now=now,
            lifetime=timedelta(days=30),
            urls=pki.publication_urls("http://x"),
        ).row.serial


def test_a_suspension_revokes_every_certificate_a_sign_in_would_accept(portal: Portal) -> None:
    """A certificate naming AD's implicit UPN, or the UPN in other letters' case, is the person's for the sign-in,
    so the withdrawal revokes it too; a colleague's stays valid."""
    now = datetime.now(UTC)
    upns = {"implicit": f"{PERSON}@soho.test", "other case": PERSON_UPN.upper(), "colleague": f"{ADMIN}@soho.test"}
    serials = {label: _issue(portal, upn, now) for label, upn in upns.items()}
    handoff = HandOff(portal.directory, portal.authority, timedelta(hours=24), "SOHO-Agents")
    with session_scope(portal.engine) as db:
        application = start_application(
            db, handoff, PERSON, callback_number="", settings=EnrollmentSettings(), actor="hr", now=now
        )
        withdraw_seat(db, application, handoff, actor="hr", now=now, why="suspended")
    with session_scope(portal.engine) as db:
        rows = db.exec(select(IssuedCertificate).where(col(IssuedCertificate.serial).in_(serials.values()))).all()
        revoked = {row.serial: row.revoked_at is not None for row in rows}
    assert {label: revoked[serial] for label, serial in serials.items()} == {
        "implicit": True,
        "other case": True,
        "colleague": False,
    }


def _apply(portal: Portal, sam: str, now: datetime) -> int:
    """The person's application; HR withdraws it in each test."""
    handoff = HandOff(portal.directory, portal.authority, timedelta(hours=24), "SOHO-Agents")
    with session_scope(portal.engine) as db:
        application = start_application(
            db, handoff, sam, callback_number="", settings=EnrollmentSettings(), actor="hr", now=now
        )
        assert application.id is not None
        return application.id


def _rename(people: SambaDC, sam: str) -> str:
    """A new CN, account name and UPN in AD, as an administrator renames someone; the objectGUID stays."""
    renamed = f"{sam}-r"
    admin = people.admin()
    assert admin.modify_dn(user_dn(sam), f"CN={renamed}"), admin.result
    changes = {"sAMAccountName": [renamed], "userPrincipalName": [f"{renamed}.upn@corp.example"]}
    assert admin.modify(user_dn(renamed), {name: [("MODIFY_REPLACE", value)] for name, value in changes.items()})
    admin.unbind()
    return renamed


def _withdraw(portal: Portal, application_id: int, handoff: HandOff, now: datetime) -> None:
    with session_scope(portal.engine) as db:
        withdraw_seat(db, db.get_one(Application, application_id), handoff, actor="hr", now=now, why="suspended")


@contextmanager
def _ad_unreachable(portal: Portal, people: SambaDC) -> Iterator[tuple[HandOff, TcpRelay]]:
    """A hand-off whose directory reaches AD through a relay that refuses every connection until the test lets it."""
    with tcp_relay(("127.0.0.1", 636)) as relay:
        relay.refusing = True
        directory = open_directory(people.settings(servers=[f"ldaps://127.0.0.1:{relay.port}"], receive_timeout=2))
        try:
            yield HandOff(directory, portal.authority, timedelta(hours=24), "SOHO-Agents"), relay
        finally:
            directory.close()


def _revoked(portal: Portal, *serials: str) -> dict[str, bool]:
    with session_scope(portal.engine) as db:
        rows = db.exec(select(IssuedCertificate).where(col(IssuedCertificate.serial).in_(serials))).all()
        return {row.serial: row.revoked_at is not None for row in rows}


def test_a_suspension_after_a_rename_revokes_the_certificates_of_both_names(portal: Portal, people: SambaDC) -> None:
    """Renamed in AD after the application (new account name, UPN and CN): the person is found by their objectGUID,
    so a certificate issued to the new UPN is revoked, and so is the one issued to the name they applied under."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    old_name = _issue(portal, f"{sam}.upn@corp.example", now)
    new_name = _issue(portal, f"{_rename(people, sam)}.upn@corp.example", now)
    _withdraw(
        portal, application_id, HandOff(portal.directory, portal.authority, timedelta(hours=24), "SOHO-Agents"), now
    )
    assert _revoked(portal, old_name, new_name) == {old_name: True, new_name: True}


def _once_ad_answers(portal: Portal, handoff: HandOff, application_id: int, now: datetime) -> list[str]:
    """The membership pass's revocations, repeated until the application owes nothing (ldap3 tries a server that
    failed again only after 5 s), within 30 s."""
    revoked: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        revoked += finish_owed_revocations(portal.engine, handoff, now)
        with session_scope(portal.engine) as db:
            if db.get_one(Application, application_id).revocation_owed_since is None:
                return revoked
        time.sleep(1)
    raise AssertionError(f"still owed after 30 s; revoked meanwhile: {revoked}")


def test_a_suspension_while_ad_is_down_revokes_the_new_names_certificate_once_ad_answers(
    portal: Portal, people: SambaDC
) -> None:
    """Renamed in AD, then suspended while AD cannot be reached: the withdrawal revokes what the name they applied
    under holds and owes the rest, and the membership pass revokes the new name's certificate once AD answers
    (audited, once). Before, nothing ever came back for it: the certificate of the new name stayed valid."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    old_name = _issue(portal, f"{sam}.upn@corp.example", now)
    new_name = _issue(portal, f"{_rename(people, sam)}.upn@corp.example", now)
    with _ad_unreachable(portal, people) as (cut_off, relay):
        _withdraw(portal, application_id, cut_off, now)
        assert _revoked(portal, old_name, new_name) == {old_name: True, new_name: False}
        assert finish_owed_revocations(portal.engine, cut_off, now) == []  # AD still down: still owed
        relay.refusing = False
        assert _once_ad_answers(portal, cut_off, application_id, now) == [new_name]
        assert finish_owed_revocations(portal.engine, cut_off, now) == []  # once
    assert _revoked(portal, new_name) == {new_name: True}
    with session_scope(portal.engine) as db:
        finished = db.exec(
            select(AuditEvent).where(AuditEvent.action == "enrollment.handoff.withdraw", AuditEvent.target == sam)
        ).all()
    assert [(row.outcome, json.loads(row.detail)["revoked"]) for row in finished] == [
        ("suspended", [old_name]),
        ("revocation_finished", [new_name]),
    ]


def test_a_suspension_while_ad_is_down_revokes_at_once_the_certificate_their_sessions_used(
    portal: Portal, people: SambaDC
) -> None:
    """Renamed in AD, signed in with a certificate of the new name, suspended while AD cannot be reached: the
    certificate their session signed in with is theirs whatever their name, and is revoked at once."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    renamed = _rename(people, sam)
    used = _issue(portal, f"{renamed}.upn@corp.example", now)
    with session_scope(portal.engine) as db:
        pem = db.exec(select(IssuedCertificate.pem).where(IssuedCertificate.serial == used)).one()
    portal.certificates[renamed] = x509.load_pem_x509_certificate(pem.encode())
    with portal.client() as client:
        assert sign_in(client, renamed, samba.PASSWORD, headers=portal.proxy_headers(renamed)).status_code == 303
    with _ad_unreachable(portal, people) as (cut_off, _relay):
        _withdraw(portal, application_id, cut_off, now)
    assert _revoked(portal, used) == {used: True}


def test_a_suspension_while_ad_is_down_revokes_at_once_the_certificate_bound_to_them_under_a_new_name(
    portal: Portal, people: SambaDC
) -> None:
    """Renamed in AD, then given a certificate of the new name bound to their objectGUID: a suspension while AD
    cannot be reached revokes it at once by that id, with no need of AD's answer."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    person_id = portal.directory.lookup(sam).person_id
    bound = _issue(portal, f"{_rename(people, sam)}.upn@corp.example", now, person_id)
    with _ad_unreachable(portal, people) as (cut_off, _relay):
        _withdraw(portal, application_id, cut_off, now)
    assert _revoked(portal, bound) == {bound: True}


def test_a_person_approved_again_before_ad_answers_keeps_their_certificate(portal: Portal, people: SambaDC) -> None:
    """The owed revocation is of a person no longer approved: approved again meanwhile, their certificate stays."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    with _ad_unreachable(portal, people) as (cut_off, relay):
        _withdraw(portal, application_id, cut_off, now)
        kept = _issue(portal, f"{sam}.upn@corp.example", now)
        with session_scope(portal.engine) as db:
            again = db.get_one(Application, application_id)
            again.state = ApplicationState.APPROVED
            db.add(again)
        relay.refusing = False
        assert _once_ad_answers(portal, cut_off, application_id, now) == []
    assert _revoked(portal, kept) == {kept: False}
    with session_scope(portal.engine) as db:
        assert db.get_one(Application, application_id).revocation_owed_since is None


def test_a_person_deleted_from_ad_before_it_answers_is_audited_as_unresolved(portal: Portal, people: SambaDC) -> None:
    """Suspended while AD is down, then deleted from AD: once AD answers there is no name left to revoke under, so
    the withdrawal's debt ends, audited as unresolved with AD's answer, rather than being asked about for ever."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    with _ad_unreachable(portal, people) as (cut_off, relay):
        _withdraw(portal, application_id, cut_off, now)
        admin = people.admin()
        assert admin.delete(user_dn(sam)), admin.result
        admin.unbind()
        relay.refusing = False
        assert _once_ad_answers(portal, cut_off, application_id, now) == []
    with session_scope(portal.engine) as db:
        audited = db.exec(
            select(AuditEvent).where(AuditEvent.action == "enrollment.handoff.withdraw", AuditEvent.target == sam)
        ).all()
    assert [row.outcome for row in audited] == ["suspended", "revocation_unresolved"]
    assert json.loads(audited[1].detail)["unresolved"]


def test_a_withdrawal_of_an_application_without_a_directory_id_owes_nothing(portal: Portal, people: SambaDC) -> None:
    """An application from before directory ids were kept names the person by login only: its certificates are
    revoked by that name at once, and nothing is owed for later (there is no id to find a renamed person by)."""
    sam, _ = fresh_person(people)
    now = datetime.now(UTC)
    application_id = _apply(portal, sam, now)
    certificate = _issue(portal, f"{sam}.upn@corp.example", now)
    with session_scope(portal.engine) as db:
        legacy = db.get_one(Application, application_id)
        legacy.person_id = None
        db.add(legacy)
    with _ad_unreachable(portal, people) as (cut_off, _relay):
        _withdraw(portal, application_id, cut_off, now)
    with session_scope(portal.engine) as db:
        assert db.get_one(Application, application_id).revocation_owed_since is None
    assert _revoked(portal, certificate) == {certificate: True}


def _spoofed_supervisor(dc: SambaDC) -> str:
    """A user in a group that copies SOHO-Supervisors' CN in an OU of its own (anyone allowed to create groups
    somewhere under the base DN can make one)."""
    sandbox, sam = f"OU=Sandbox,{samba.BASE_DN}", "spoofed.user"
    spoof_group = f"CN=SOHO-Supervisors,{sandbox}"
    conn = dc.admin()
    if conn.add(sandbox, attributes={"objectClass": ["organizationalUnit"]}):
        group = {"objectClass": ["group"], "sAMAccountName": "sandbox-sup"}
        assert conn.add(spoof_group, attributes=group), conn.result
    conn.unbind()
    _add_user(dc, sam, f"{sam}@soho.test", "SOHO-HR")  # a real group without any role in POLICY
    conn = dc.admin()
    conn.modify(spoof_group, {"member": [("MODIFY_ADD", [user_dn(sam)])]})
    conn.unbind()
    return sam


def test_a_group_copying_a_role_groups_cn_gives_no_role_and_is_audited(portal: Portal, people: SambaDC) -> None:
    """Without a role the policy asks for a certificate (it fails closed): refused before the password is tried."""
    spoofed = _spoofed_supervisor(people)
    with portal.client() as real, portal.client() as client:
        # the real group's member is let in
        assert sign_in(real, PERSON, samba.PASSWORD).headers["location"] == "/supervisor"
        refused = sign_in(client, spoofed, samba.PASSWORD)
        assert refused.status_code == 401 and "client certificate is required" in page_error(refused)
    with session_scope(portal.engine) as db:
        row = db.exec(select(AuditEvent).where(AuditEvent.actor == spoofed)).one()
    detail = json.loads(row.detail)
    assert row.outcome == "certificate_missing" and detail["roles"] == [] and detail["person"]
