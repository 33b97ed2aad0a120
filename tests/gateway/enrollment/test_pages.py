"""The portal pages over real HTTP: privacy of vetting data, evidence files, suspension, certificate requests."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import httpx
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.enrollment.models import Application, CertificateRequest, CertificateRequestState
from gateway.pki import service as pki
from gateway.pki.models import IssuedCertificate
from gateway.sessions.models import EndReason, HomeSession, SessionState
from tests.gateway.enrollment.conftest import PHONE, Portal, post_form, signed_in, wait_for

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
HTML = b"<html><script>alert(document.cookie)</script></html>"


def _apply(portal: Portal, login: str = "applicant1") -> int:
    with signed_in(portal, login) as client:
        answer = post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": "138 0013 8000"})
        assert answer.status_code == 303, answer.text
    with session_scope(portal.engine) as db:
        application = db.exec(select(Application).where(Application.login == login)).one()
        assert application.callback_e164 == PHONE
        return application.id or 0


def _walk_to_approval(hr: httpx.Client, application_id: int, stages: list[str]) -> None:
    """Pass every stage; the one whose passing approves is asked first and changes nothing until confirmed."""
    page = f"/hr/enrollment/{application_id}"
    for stage in stages[:-1]:
        fields = {"stage": stage, "outcome": "passed", "notes": "ok"}
        answer = post_form(hr, page, f"{page}/decide", fields)
        if stage == stages[-2]:
            assert answer.status_code == 200 and 'id="confirm-form"' in answer.text, answer.text
            assert 'name="notes" value="ok"' in answer.text  # what HR typed rides along to the confirmation
            assert 'data-stage="' + stage + '"' in hr.get(page).text  # not approved yet
            answer = post_form(hr, page, f"{page}/decide", {**fields, "confirmed": "yes"})
            assert answer.headers["location"] == f"{page}?done=approved"
        assert answer.status_code == 303, answer.text


def _audited(portal: Portal, action: str, actor: str) -> int:
    with session_scope(portal.engine) as db:
        return len(db.exec(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor == actor)).all())


def test_applicant_sees_their_own_status_and_nothing_of_the_vetting(portal: Portal) -> None:
    application_id = _apply(portal)
    with signed_in(portal, "applicant1") as client:
        status = client.get("/enrollment", headers={"accept": "text/html"})
        assert 'data-stage="application"' in status.text and 'data-state="open"' in status.text
        for forbidden in ("/hr/enrollment", f"/hr/enrollment/{application_id}", "/hr/enrollment-import"):
            assert client.get(forbidden, headers={"accept": "text/html"}).status_code == 403
    with signed_in(portal, "applicant2") as other:
        assert "data-stage" not in other.get("/enrollment").text  # no application: sees none of applicant1's


def test_every_read_of_vetting_data_is_audited(portal: Portal) -> None:
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        before = _audited(portal, "enrollment.read", "hr1")
        assert hr.get(f"/hr/enrollment/{application_id}").status_code == 200
        assert _audited(portal, "enrollment.read", "hr1") == before + 1
        assert 'data-login="applicant1"' in hr.get("/hr/enrollment", params={"state": "open"}).text
        assert 'data-login="applicant1"' not in hr.get("/hr/enrollment", params={"state": "approved"}).text
    assert _audited(portal, "enrollment.list", "hr1") == 2


def test_evidence_is_judged_by_its_bytes_and_only_ever_served_as_a_download(portal: Portal) -> None:
    application_id = _apply(portal)
    page = f"/hr/enrollment/{application_id}"
    with signed_in(portal, "hr1") as hr:
        refused = post_form(
            hr,
            page,
            f"{page}/evidence",
            {"stage": "application"},
            files={"evidence": ("report.pdf", b"MZ\x90\x00\x03" + bytes(200), "application/pdf")},
        )
        assert refused.status_code == 422 and "This kind of file is not accepted" in refused.text
        for name, content in (("photo.html", PNG), ("notes.txt", HTML)):
            answer = post_form(
                hr, page, f"{page}/evidence", {"stage": "application"}, files={"evidence": (name, content, "text/html")}
            )
            assert answer.status_code == 303, answer.text
        links = re.findall(rf'href="({page}/evidence/\d+)"', hr.get(page).text)
        served = [hr.get(link) for link in links]
    assert [r.headers["content-type"].split(";")[0] for r in served] == ["image/png", "text/plain"]
    for response in served:
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    assert served[0].content == PNG and served[1].content == HTML
    assert _audited(portal, "enrollment.evidence.read", "hr1") == 2


def test_evidence_with_a_chinese_file_name_downloads_under_its_own_name(portal: Portal) -> None:
    application_id = _apply(portal)
    page = f"/hr/enrollment/{application_id}"
    name, content = "身份证 扫描.pdf", b"%PDF-1.4\n" + bytes(64)
    with signed_in(portal, "hr1") as hr:
        answer = post_form(
            hr, page, f"{page}/evidence", {"stage": "application"}, files={"evidence": (name, content, "x/y")}
        )
        assert answer.status_code == 303, answer.text
        (link,) = re.findall(rf'href="({page}/evidence/\d+)"', hr.get(page).text)
        served = hr.get(link)
    assert served.status_code == 200 and served.content == content
    disposition = served.headers["content-disposition"]
    fallback = re.search(r'filename="([^"]*)"', disposition)
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition)
    assert fallback and fallback.group(1).isascii() and fallback.group(1).endswith(".pdf")
    assert encoded and unquote(encoded.group(1)) == name


def test_suspension_revokes_certificates_ends_sessions_and_leaves_the_group(portal: Portal) -> None:
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        _walk_to_approval(hr, application_id, portal.settings.enrollment.stages)
    wait_for(lambda: "SOHO-Agents" in {g.name for g in portal.directory.lookup("applicant1").groups})
    with session_scope(portal.engine) as db:
        issued = pki.issue_agent_certificate(
            db,
            portal.authority,
            upn="applicant1@corp.example",
            account="applicant1",
            wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            person_id=None,
            actor=pki.Actor("admin1"),
            now=datetime.now(UTC),
            lifetime=timedelta(days=7),
            urls=pki.publication_urls(portal.base_url),
        )
    with signed_in(portal, "applicant1") as agent, signed_in(portal, "hr1") as hr:
        assert agent.get("/enrollment").status_code == 200
        page = f"/hr/enrollment/{application_id}"
        fields = {"state": "suspended", "reason": "left the programme"}
        asked = post_form(hr, page, f"{page}/close", fields)
        assert asked.status_code == 200 and "Suspend the home seat of applicant1?" in asked.text
        assert agent.get("/enrollment").status_code == 200  # nothing happened before HR confirmed
        answer = post_form(hr, page, f"{page}/close", {**fields, "confirmed": "yes"})
        assert answer.status_code == 303, answer.text
        notice = hr.get(answer.headers["location"], headers={"accept": "text/html"}).text
        assert "The home seat was suspended" in notice
        assert agent.get("/enrollment", headers={"accept": "text/html"}).headers["location"].startswith("/login?ended=")
    wait_for(lambda: "SOHO-Agents" not in {g.name for g in portal.directory.lookup("applicant1").groups})
    with session_scope(portal.engine) as db:
        certificate = db.exec(select(IssuedCertificate).where(IssuedCertificate.serial == issued.row.serial)).one()
        assert certificate.revocation_reason == "affiliationChanged" and certificate.revoked_at is not None
        sessions = db.exec(select(HomeSession).where(HomeSession.login == "applicant1")).all()
        assert all(s.state is SessionState.ENDING for s in sessions)  # ended once their children closed
        assert [s.end_reason for s in sessions].count(EndReason.HR_SUSPENDED) == 1  # the one live at suspension
        request = db.exec(select(CertificateRequest).where(CertificateRequest.login == "applicant1")).one()
        assert request.state is CertificateRequestState.CANCELLED


def test_security_admin_sees_and_closes_the_certificate_request_an_approval_opened(portal: Portal) -> None:
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        _walk_to_approval(hr, application_id, portal.settings.enrollment.stages)
        assert hr.get("/security-admin/certificate-requests").status_code == 403
    with signed_in(portal, "admin1") as admin:
        page = "/security-admin/certificate-requests"
        listing = admin.get(page)
        assert 'data-login="applicant1"' in listing.text
        request_id = re.search(r'action="/security-admin/certificate-requests/(\d+)"', listing.text).group(1)  # type: ignore[union-attr]
        answer = post_form(admin, page, f"{page}/{request_id}", {"state": "issued"})
        assert answer.status_code == 303
        assert 'data-login="applicant1"' not in admin.get(page).text
    with session_scope(portal.engine) as db:
        events = db.exec(select(AuditEvent).where(AuditEvent.action == "enrollment.certificate_request")).all()
        assert [(e.actor, e.outcome) for e in events] == [("admin1", "issued")]
        assert db.exec(select(col(CertificateRequest.state))).all() == [CertificateRequestState.ISSUED]
