"""Certificate requests opened by approvals, for the security admins to fulfil or cancel."""

from datetime import datetime

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.directory import Directory
from gateway.directory.errors import DirectoryError, LoginRefused
from gateway.enrollment.errors import CertificateRequestRefused, DirectoryChangeFailed, StageConflict
from gateway.enrollment.models import Application, ApplicationState, CertificateRequest, CertificateRequestState
from gateway.errors import NotFound


def open_requests(db: Session) -> list[CertificateRequest]:
    query = select(CertificateRequest).where(CertificateRequest.state == CertificateRequestState.OPEN)
    return list(db.exec(query.order_by(col(CertificateRequest.created_at))).all())


def open_request_to_issue(db: Session, request_id: int) -> tuple[CertificateRequest, Application | None]:
    """The open request and the approved application behind it, both locked until the caller's transaction ends
    (the application first, as HR's close takes it) and read again past the session's memory. A withdrawal that
    committed since the page was read has cancelled the request and revoked the person's certificates: refused. One
    still running waits for the issuance to commit, then finds and revokes the new certificate too."""
    unknown = NotFound(f"no open certificate request {request_id}", key="certificate_request_unknown")
    found = db.get(CertificateRequest, request_id)
    if found is None:
        raise unknown
    application = (
        db.get(Application, found.application_id, with_for_update=True, populate_existing=True)
        if found.application_id
        else None
    )
    request = db.get(CertificateRequest, request_id, with_for_update=True, populate_existing=True)
    if request is None or request.state is not CertificateRequestState.OPEN:
        raise unknown
    if application is not None and application.state is not ApplicationState.APPROVED:
        raise unknown
    return request, application


def applicant_named(directory: Directory, application: Application | None, upn: str) -> str:
    """The directory id of the person HR approved, to bind the certificate to, once the directory says the account
    ``upn`` names is theirs. A certificate naming someone else would be bound to the applicant, so withdrawing the
    one it names would spare it, and a sign-in as them would accept it; a request without an approved person's id
    would issue a certificate bound to nobody, matched by name only. Both are refused."""
    if application is None or not application.person_id:
        raise CertificateRequestRefused(
            "the request has no approved application with the person's directory id; issue it with sohogw cert issue",
            key="certificate_request_unbound",
        )
    try:
        named = directory.find_account(upn).person_id
    except LoginRefused:  # no such account, or not a name the directory takes
        named = None
    except DirectoryError as error:
        raise DirectoryChangeFailed(f"the directory could not be read: {error.user_message}") from None
    if named != application.person_id:
        raise CertificateRequestRefused(
            f"{upn!r} is not the directory account of {application.login!r}, whose request this is",
            key="certificate_upn_not_applicant",
            upn=upn,
            login=application.login,
        )
    return application.person_id


def close_request(
    db: Session, request_id: int, state: CertificateRequestState, *, actor: str, now: datetime
) -> CertificateRequest:
    """Mark a request issued (the certificate was handed over) or cancelled. The request is locked and read again
    past the session's memory: one cancelled by a withdrawal that committed after the caller first read it is not
    marked issued."""
    request = db.get(CertificateRequest, request_id, with_for_update=True, populate_existing=True)
    if request is None:
        raise NotFound(f"no certificate request {request_id}")
    if request.state is not CertificateRequestState.OPEN or state is CertificateRequestState.OPEN:
        raise StageConflict(f"the request is {request.state.value}; only an open request is closed")
    request.state, request.closed_at, request.closed_by = state, now, actor
    db.add(request)
    db.flush()
    record(
        db,
        actor=actor,
        action="enrollment.certificate_request",
        target=request.login,
        outcome=state.value,
        detail={"request": request.id},
        clock=lambda: now,
    )
    return request
