"""Certificate requests opened by approvals, for the security admins to fulfil or cancel."""

from datetime import datetime

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.enrollment.errors import StageConflict
from gateway.enrollment.models import CertificateRequest, CertificateRequestState
from gateway.errors import NotFound


def open_requests(db: Session) -> list[CertificateRequest]:
    query = select(CertificateRequest).where(CertificateRequest.state == CertificateRequestState.OPEN)
    return list(db.exec(query.order_by(col(CertificateRequest.created_at))).all())


def close_request(
    db: Session, request_id: int, state: CertificateRequestState, *, actor: str, now: datetime
) -> CertificateRequest:
    """Mark a request issued (the certificate was handed over) or cancelled."""
    request = db.get(CertificateRequest, request_id)
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
