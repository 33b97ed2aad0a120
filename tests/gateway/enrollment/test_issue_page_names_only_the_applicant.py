"""Over real HTTP: the security admin's issue page writes into a requested certificate only the UPN of the person
HR approved. The certificate is bound to the applicant's directory id whatever UPN it carries; one naming a
colleague would be spared when the colleague is withdrawn and accepted at the colleague's sign-in. A request with
no approved person behind it would issue a certificate bound to nobody. Both are refused on the page, audited, and
nothing is issued."""

import json
import re
from datetime import UTC, datetime

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.enrollment.models import CertificateRequest, CertificateRequestState
from gateway.pki.models import CertificateKind, IssuedCertificate
from tests.gateway.enrollment.conftest import Portal, give_upns, post_form, signed_in
from tests.gateway.enrollment.test_pages import _apply, _walk_to_approval
from tests.vpn.keys import key_pair

PAGE = "/security-admin/certificate-requests"


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "applicant1")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def _issue(admin: httpx.Client, request_id: int, upn: str) -> httpx.Response:
    fields = {"upn": upn, "wireguard_key": key_pair()[1], "csr": _csr()}
    return post_form(admin, PAGE, f"{PAGE}/{request_id}/issue", fields)


def _approved_request(portal: Portal) -> int:
    give_upns(portal)
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        _walk_to_approval(hr, application_id, portal.settings.enrollment.stages)
    with session_scope(portal.engine) as db:
        return db.exec(select(CertificateRequest.id).where(CertificateRequest.login == "applicant1")).one() or 0


def _refusals(portal: Portal) -> list[str]:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(AuditEvent.action == "cert.issue", AuditEvent.outcome == "refused")
        ).all()
    return [json.loads(row.detail)["reason"] for row in rows]


def _issued(portal: Portal) -> list[tuple[str | None, str | None]]:
    with session_scope(portal.engine) as db:
        agents = db.exec(select(IssuedCertificate).where(IssuedCertificate.kind == CertificateKind.AGENT)).all()
    return [(c.upn, c.person_id) for c in agents]


def test_a_certificate_naming_a_colleague_is_refused_and_one_naming_the_applicant_is_bound_to_them(
    portal: Portal,
) -> None:
    request_id = _approved_request(portal)
    with signed_in(portal, "admin1") as admin:
        refused = _issue(admin, request_id, "applicant2@corp.example")
        assert refused.status_code == 422
        assert "applicant2@corp.example is not the directory account of applicant1" in refused.text
        assert _issue(admin, request_id, "nobody@corp.example").status_code == 422  # no such account either
        assert _issued(portal) == []
        assert _refusals(portal) == ["certificate_upn_not_applicant"] * 2
        assert re.search(rf'action="{PAGE}/{request_id}/issue"', admin.get(PAGE).text)  # still open

        issued = _issue(admin, request_id, "APPLICANT1@corp.example")  # any spelling of theirs
        assert issued.status_code == 303, re.findall(r"id=\"error\"[^<]*<[^<]*", issued.text)
    assert _issued(portal) == [("APPLICANT1@corp.example", portal.directory.lookup("applicant1").person_id)]


def test_a_request_without_an_approved_person_is_refused(portal: Portal) -> None:
    """A request no approval opened (none has an application with the person's id) is issued with the CLI, which
    asks the directory for the person."""
    with session_scope(portal.engine) as db:
        orphan = CertificateRequest(
            login="applicant1",
            upn="applicant1@corp.example",
            state=CertificateRequestState.OPEN,
            created_at=datetime.now(UTC),
        )
        db.add(orphan)
        db.flush()
        request_id = orphan.id or 0
    with signed_in(portal, "admin1") as admin:
        assert _issue(admin, request_id, "applicant1@corp.example").status_code == 422
    assert _issued(portal) == []
    assert _refusals(portal) == ["certificate_request_unbound"]
