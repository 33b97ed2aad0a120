"""Against a real Samba AD DC: withdrawing a person revokes their own certificates, never a colleague's that carries
a name of theirs.

B applied under a UPN that is colleague A's now (B took a new one and A was given it; AD refuses a UPN two accounts
hold at once, OpenLDAP need not). Before certificates were bound to the person's directory id, the withdrawal matched
every live certificate against the names B's application and B's entry carry, found A's and revoked it: a denial of
service against A, audited as B's. Now A's certificate stays valid and A still signs in with
it, B's own certificate is revoked, and the withdrawal's audit row names A's certificate as spared. Sparing stops
where the directory no longer knows B's id (a recreated account: the certificates of B's names are revoked), and an
application without an id finds nothing by the id of whoever has its login now.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.enrollment.handoff import HandOff, withdraw_seat
from gateway.enrollment.models import Application
from gateway.enrollment.service import start_application
from gateway.enrollment.settings import EnrollmentSettings
from gateway.pki import service as pki
from gateway.pki.models import IssuedCertificate
from gateway.sessions.models import HomeSession, SessionState
from tests.directory import samba
from tests.directory.samba import SambaDC, group_dn, user_dn
from tests.support.portal import Portal, page_error, serving_portal, sign_in
from tests.vpn.keys import key_pair

pytestmark = pytest.mark.e2e

POLICY = f"""\
version: 1
roles:
  agent: {{require_client_certificate: true, require_totp: false}}
groups:
  "{group_dn("SOHO-Agents")}": {{roles: [agent]}}
"""


@pytest.fixture
def portal(samba_dc: SambaDC, tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    directory = open_directory(samba_dc.settings())
    with serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=Portal,
        passwords={},
        groups={},
        directory=directory,
        policy=POLICY,
        trusted_proxy=True,  # the test's client presents the certificates as the reverse proxy would
    ) as running:
        yield running
    directory.close()


def _agent(dc: SambaDC, role: str) -> str:
    """A new account in SOHO-Agents with a UPN of its own; its sAMAccountName."""
    sam = f"{role}-{uuid.uuid4().hex[:8]}"
    _add_agent(dc, sam)
    return sam


def _recreate(dc: SambaDC, sam: str) -> None:
    """The account deleted and added again under the same names: AD gives the new entry a new objectGUID."""
    conn = dc.admin()
    assert conn.delete(user_dn(sam)), conn.result
    conn.unbind()
    _add_agent(dc, sam)


def _add_agent(dc: SambaDC, sam: str) -> None:
    conn = dc.admin()
    assert conn.add(user_dn(sam), attributes={
        "objectClass": ["user"], "sAMAccountName": sam, "userPrincipalName": f"{sam}@corp.example",
        "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"), "userAccountControl": "512",
    }), conn.result  # fmt: skip
    assert conn.modify(group_dn("SOHO-Agents"), {"member": [("MODIFY_ADD", [user_dn(sam)])]}), conn.result
    conn.unbind()


def _take_upn(dc: SambaDC, sam: str, upn: str) -> None:
    conn = dc.admin()
    assert conn.modify(user_dn(sam), {"userPrincipalName": [("MODIFY_REPLACE", [upn])]}), conn.result
    conn.unbind()


def _issue(portal: Portal, sam: str, upn: str, person_id: str | None) -> IssuedCertificate:
    with session_scope(portal.engine) as db:
        issued = pki.issue_agent_certificate(
            db,
            portal.authority,
            upn=upn,
            wireguard_key=key_pair()[1],
            person_id=person_id,
            actor=pki.Actor("security-admin"),
            now=datetime.now(UTC),
            lifetime=timedelta(days=30),
            urls=pki.publication_urls("http://x"),
        )
    portal.certificates[sam] = issued.cert
    return issued.row


def _assert_signs_in(portal: Portal, sam: str) -> None:
    """A sign-in with the password and the certificate issued to ``sam``, by account name (while two accounts carry
    the same UPN, AD's answer to the UPN is ambiguous)."""
    with portal.client() as client:
        answer = sign_in(client, sam, samba.PASSWORD, headers=portal.proxy_headers(sam))
        assert answer.status_code == 303, page_error(answer)


def _handoff(portal: Portal) -> HandOff:
    return HandOff(portal.directory, portal.authority, timedelta(hours=24), "SOHO-Agents")


def _apply(portal: Portal, sam: str) -> int:
    with session_scope(portal.engine) as db:
        application = start_application(
            db,
            _handoff(portal),
            sam,
            callback_number="",
            settings=EnrollmentSettings(),
            actor="hr",
            now=datetime.now(UTC),
        )
        assert application.id is not None
        return application.id


def _withdraw(portal: Portal, application_id: int) -> None:
    with session_scope(portal.engine) as db:
        application = db.get_one(Application, application_id)
        withdraw_seat(db, application, _handoff(portal), actor="hr", now=datetime.now(UTC), why="withdrawn")


def _upn_passed_on(dc: SambaDC, withdrawn: str, colleague: str) -> tuple[str, str]:
    """The withdrawn person takes a new UPN and the colleague is given the one they applied under (AD refuses a
    UPN, or an implicit one, that another account holds); the colleague's UPN and the withdrawn person's new one."""
    passed_on, new = f"{withdrawn}@corp.example", f"{withdrawn}.new@corp.example"
    _take_upn(dc, withdrawn, new)
    _take_upn(dc, colleague, passed_on)
    return passed_on, new


def _outcome(portal: Portal, colleague: IssuedCertificate, own: IssuedCertificate, withdrawn: str) -> dict[str, object]:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(IssuedCertificate).where(col(IssuedCertificate.serial).in_([colleague.serial, own.serial]))
        ).all()
        revoked = {row.serial: row.revoked_at is not None for row in rows}
        audited = db.exec(
            select(AuditEvent).where(AuditEvent.action == "enrollment.handoff.withdraw", AuditEvent.target == withdrawn)
        ).one()
    detail = json.loads(audited.detail)
    return {
        "colleague's revoked": revoked[colleague.serial],
        "own revoked": revoked[own.serial],
        "audited as revoked": detail["revoked"],
        "audited as spared": detail.get("spared"),  # None: a hand-off that keeps no such list
    }


def _person_id(portal: Portal, sam: str) -> str:
    return portal.directory.lookup(sam).person_id


def test_a_withdrawal_spares_the_certificate_bound_to_the_colleague_who_now_has_the_upn_they_applied_under(
    portal: Portal, samba_dc: SambaDC
) -> None:
    colleague, withdrawn = _agent(samba_dc, "colleague"), _agent(samba_dc, "withdrawn")
    application_id = _apply(portal, withdrawn)
    passed_on, new = _upn_passed_on(samba_dc, withdrawn, colleague)
    colleague_certificate = _issue(portal, colleague, passed_on, _person_id(portal, colleague))
    own_certificate = _issue(portal, withdrawn, new, _person_id(portal, withdrawn))
    _withdraw(portal, application_id)
    assert _outcome(portal, colleague_certificate, own_certificate, withdrawn) == {
        "colleague's revoked": False,
        "own revoked": True,
        "audited as revoked": [own_certificate.serial],
        "audited as spared": [colleague_certificate.serial],
    }
    _assert_signs_in(portal, colleague)


def test_a_withdrawal_spares_an_unbound_certificate_of_the_upn_they_applied_under_that_a_colleague_signed_in_with(
    portal: Portal, samba_dc: SambaDC
) -> None:
    """Certificates issued before they carried a person (``person_id`` NULL) are still matched by name, except one
    whose holder signed in as someone else: the sessions say whose it is."""
    colleague, withdrawn = _agent(samba_dc, "colleague"), _agent(samba_dc, "withdrawn")
    application_id = _apply(portal, withdrawn)
    passed_on, new = _upn_passed_on(samba_dc, withdrawn, colleague)
    colleague_certificate = _issue(portal, colleague, passed_on, None)
    own_certificate = _issue(portal, withdrawn, new, None)
    _assert_signs_in(portal, colleague)
    _withdraw(portal, application_id)
    assert _outcome(portal, colleague_certificate, own_certificate, withdrawn) == {
        "colleague's revoked": False,
        "own revoked": True,
        "audited as revoked": [own_certificate.serial],
        "audited as spared": [colleague_certificate.serial],
    }
    _assert_signs_in(portal, colleague)
    with session_scope(portal.engine) as db:
        live = db.exec(select(HomeSession.login).where(HomeSession.state == SessionState.ACTIVE)).all()
    assert live == [colleague]


def _revoked(portal: Portal, certificate: IssuedCertificate) -> bool:
    with session_scope(portal.engine) as db:
        return db.get_one(IssuedCertificate, certificate.id).revoked_at is not None


def _withdrawal_audited(portal: Portal, withdrawn: str) -> dict[str, object]:
    with session_scope(portal.engine) as db:
        audited = db.exec(
            select(AuditEvent).where(AuditEvent.action == "enrollment.handoff.withdraw", AuditEvent.target == withdrawn)
        ).one()
    detail: dict[str, object] = json.loads(audited.detail)
    return detail


def test_a_withdrawal_revokes_the_certificate_of_their_upn_bound_to_a_recreated_account(
    portal: Portal, samba_dc: SambaDC
) -> None:
    """The person's account was deleted and added again under the same UPN (a new objectGUID), and a certificate
    issued for the new entry is bound to the new id. The directory answers that the application's id exists no
    more, so nothing tells whether the new entry is someone else: the certificates of their names are revoked
    (failing closed, as before ids), audited as ``person_id_unknown``, instead of spared as a colleague's."""
    withdrawn = _agent(samba_dc, "recreated")
    application_id = _apply(portal, withdrawn)
    _recreate(samba_dc, withdrawn)
    certificate = _issue(portal, withdrawn, f"{withdrawn}@corp.example", _person_id(portal, withdrawn))
    _withdraw(portal, application_id)
    assert _revoked(portal, certificate)
    audited = _withdrawal_audited(portal, withdrawn)
    assert (audited["revoked"], audited["spared"], audited["person_id_unknown"]) == (
        [certificate.serial],
        [],
        [certificate.serial],
    )


def test_a_withdrawal_of_an_application_without_an_id_spares_the_certificate_bound_to_whoever_has_its_login_now(
    portal: Portal, samba_dc: SambaDC
) -> None:
    """An application from before ids were kept (migration 0008) names its person by login alone, and the account
    that has the login now may be someone else's: their certificate, bound to their id and issued under a UPN they
    carried before, is no name of the application's, so it stays valid. Before, the id of the login's owner today
    was taken for the withdrawn person's, and every certificate bound to it revoked."""
    login_owner = _agent(samba_dc, "owner")
    application_id = _apply(portal, login_owner)
    with session_scope(portal.engine) as db:  # as 0008 left it: no id, no UPN
        application = db.get_one(Application, application_id)
        application.person_id, application.upn = None, None
        db.add(application)
    owners_certificate = _issue(
        portal, login_owner, f"{login_owner}.before@corp.example", _person_id(portal, login_owner)
    )
    _withdraw(portal, application_id)
    assert not _revoked(portal, owners_certificate)
    assert _withdrawal_audited(portal, login_owner)["revoked"] == []
