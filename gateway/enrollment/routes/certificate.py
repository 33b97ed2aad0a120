"""The security admins' list of certificate requests that approvals opened."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.deps import ClockDep, DbSession, RowId
from gateway.enrollment.certificate_requests import close_request, open_requests
from gateway.enrollment.models import CertificateRequestState
from gateway.errors import GatewayError
from gateway.sessions.deps import CheckedForm, SecurityAdminSession
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
