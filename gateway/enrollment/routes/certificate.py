"""The security admins' list of certificate requests that approvals opened, and issuing one in the browser."""

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certs.errors import CertificateError
from gateway.deps import ClockDep, DbSession, RowId
from gateway.enrollment.certificate_requests import (
    applicant_named,
    close_request,
    open_request_to_issue,
    open_requests,
)
from gateway.enrollment.deps import HandOffDep
from gateway.enrollment.errors import CertificateRequestRefused
from gateway.enrollment.models import CertificateRequestState
from gateway.errors import GatewayError
from gateway.pki import service as pki
from gateway.pki.deps import AuthorityDep, CaSettingsDep, PublicationUrlsDep
from gateway.sessions.deps import CheckedForm, SecurityAdminSession
from gateway.web.confirm import done
from gateway.web.forms import AuditedAs, attempt, refused_page
from gateway.web.pages import render

router = APIRouter(tags=["enrollment"])


@router.get("/security-admin/certificate-requests", response_class=HTMLResponse)
def requests_page(request: Request, admin: SecurityAdminSession, db: DbSession) -> HTMLResponse:
    return render(request, "enrollment_certificate_requests.html", requests=open_requests(db))


@router.post("/security-admin/certificate-requests/{request_id}")
def close(
    request_id: RowId, admin: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    try:
        state = CertificateRequestState(str(form.get("state", "")))
    except ValueError:
        raise GatewayError("say whether the certificate was issued or the request is cancelled") from None
    close_request(db, request_id, state, actor=admin.login, now=clock())
    return RedirectResponse("/security-admin/certificate-requests", status_code=303)


@router.post("/security-admin/certificate-requests/{request_id}/issue", response_model=None)
def issue_requested(
    request_id: RowId,
    request: Request,
    admin: SecurityAdminSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    ca: CaSettingsDep,
    urls: PublicationUrlsDep,
    authority: AuthorityDep,
    handoff: HandOffDep,
) -> Response:
    """Sign the agent's CSR for the request's person and tunnel key, and close the request as issued; a bad CSR or
    key is refused on the page with what was pasted kept. The certificate is bound to the person HR approved (their
    directory id, from the application), and the UPN written into it must be that person's account
    (``applicant_named``)."""
    wanted, application = open_request_to_issue(db, request_id)
    now = clock()

    def issue() -> pki.Issued:
        upn = str(form.get("upn", "")).strip() or wanted.upn or ""
        person_id = applicant_named(handoff.directory, application, upn)
        try:
            issued = pki.issue_agent_certificate(
                db,
                authority,
                upn=upn,
                wireguard_key=str(form.get("wireguard_key", "")).strip(),
                person_id=person_id,
                actor=pki.Actor(admin.login, admin.source_ip),
                now=now,
                lifetime=timedelta(days=ca.agent_cert_days),
                urls=urls,
                csr_pem=str(form.get("csr", "")).strip().encode(),
                account=wanted.login,
            )
        except (CertificateError, ValueError) as error:  # a CSR or key that is not what it should be
            raise CertificateRequestRefused(str(error), key="certificate_csr", detail=str(error)) from None
        close_request(db, request_id, CertificateRequestState.ISSUED, actor=admin.login, now=now)
        return issued

    outcome = attempt(db, issue, AuditedAs(admin.login, "cert.issue", admin.source_ip, wanted.login))
    if isinstance(outcome, GatewayError):
        return refused_page(
            request,
            "enrollment_certificate_requests.html",
            outcome,
            form,
            requests=open_requests(db),
            failed=request_id,
        )
    return done(f"/security-admin?serial={outcome.row.serial}", "certificate_issued")
