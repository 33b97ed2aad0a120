"""The security admin issues a requested certificate while HR withdraws the person: whichever commits first, the
withdrawn person is left with no live certificate. Before, the issue page trusted the request it had read (no
lock, the session's memory): a withdrawal that committed in between had revoked and cancelled, and the page then
issued a certificate and marked the cancelled request issued.

The issue page and HR's close lock the application (``certificate_requests.open_request_to_issue``,
``decisions.close``): on PostgreSQL the withdrawal waits for the issuance to commit, then revokes its certificate
too. SQLite has one writer and no row locks: the issuance finds the request cancelled when it closes it
(``close_request`` reads it again) and is undone."""

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from gateway.db import session_scope
from gateway.enrollment.certificate_requests import close_request, open_request_to_issue
from gateway.enrollment.decisions import close
from gateway.enrollment.errors import StageConflict
from gateway.enrollment.models import Application, ApplicationState, CertificateRequest, CertificateRequestState
from gateway.pki import service as pki
from gateway.pki.models import IssuedCertificate
from tests.gateway.enrollment.conftest import Portal, give_upns, signed_in
from tests.gateway.enrollment.test_pages import _apply, _walk_to_approval
from tests.vpn.keys import key_pair


def test_a_withdrawal_during_an_issuance_leaves_the_person_no_live_certificate(portal: Portal) -> None:
    give_upns(portal)
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        _walk_to_approval(hr, application_id, portal.settings.enrollment.stages)
    person_id = portal.directory.lookup("applicant1").person_id
    now = datetime.now(UTC)

    def hr_withdraws() -> None:
        with session_scope(portal.engine) as db:
            application = db.get_one(Application, application_id)
            close(db, application, ApplicationState.WITHDRAWN, "left", handoff=portal.handoff(), actor="hr1", now=now)

    withdrawal = threading.Thread(target=hr_withdraws)
    try:
        with session_scope(portal.engine) as db:
            request_id = db.exec(select(CertificateRequest.id)).one() or 0
            request, _ = open_request_to_issue(db, request_id)  # the page has read the request open
            withdrawal.start()
            time.sleep(1)  # HR's withdrawal commits meanwhile (SQLite), or waits for the issuance (PostgreSQL)
            pki.issue_agent_certificate(
                db,
                portal.authority,
                upn="applicant1@corp.example",
                wireguard_key=key_pair()[1],
                person_id=person_id,
                actor=pki.Actor("admin1"),
                now=now,
                lifetime=timedelta(days=30),
                urls=pki.publication_urls("http://x"),
            )
            close_request(db, request.id or 0, CertificateRequestState.ISSUED, actor="admin1", now=now)
    except StageConflict:
        pass  # SQLite: the withdrawal came first; the issuance was undone
    withdrawal.join(timeout=30)
    with session_scope(portal.engine) as db:
        live = db.exec(
            select(IssuedCertificate.serial).where(
                IssuedCertificate.person_id == person_id, col(IssuedCertificate.revoked_at).is_(None)
            )
        ).all()
        application = db.get_one(Application, application_id)
    assert (application.state, live) == (ApplicationState.WITHDRAWN, [])
