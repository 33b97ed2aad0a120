"""Evidence files: HR attaches them to a stage and downloads them. Served only as attachments, never inline."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from gateway.deps import ClockDep, DbSession, RowId
from gateway.enrollment import evidence as files
from gateway.enrollment.deps import EnrollmentSettingsDep
from gateway.enrollment.errors import EvidenceRefused
from gateway.enrollment.queries import application_detail
from gateway.enrollment.service import get_application
from gateway.errors import GatewayError
from gateway.sessions.deps import CheckedForm, HrSession
from gateway.web.forms import AuditedAs, attempt, refused_page

router = APIRouter(tags=["enrollment"])


@router.post("/hr/enrollment/{application_id}/evidence")
def attach(
    request: Request,
    application_id: RowId,
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
) -> Response:
    """A refused file (wrong type, too large, empty) is said on the application's page, not an error page."""
    upload = form.get("evidence")
    application = get_application(db, application_id)
    stage = str(form.get("stage", ""))

    def add() -> None:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise EvidenceRefused("choose a file to attach", key="evidence_no_file")
        content = upload.file.read(settings.evidence_max_bytes + 1)
        files.add_evidence(
            db, application, stage, upload.filename, content, settings=settings, actor=hr.login, now=clock()
        )

    refused = attempt(db, add, AuditedAs(hr.login, "enrollment.evidence", hr.source_ip, str(application_id)))
    if isinstance(refused, GatewayError):
        detail = application_detail(db, application_id, actor=hr.login, now=clock())
        context: dict[str, Any] = {"detail": detail, "stages": settings.stages}
        return refused_page(request, "enrollment_application.html", refused, form, **context)
    return RedirectResponse(f"/hr/enrollment/{application_id}", status_code=303)


@router.get("/hr/enrollment/{application_id}/evidence/{evidence_id}")
def download(application_id: RowId, evidence_id: RowId, hr: HrSession, db: DbSession, clock: ClockDep) -> Response:
    """A download with the sniffed type, ``nosniff`` and a sandboxing CSP, so no file can run in the portal."""
    evidence = files.open_evidence(db, get_application(db, application_id), evidence_id, actor=hr.login, now=clock())
    headers = {
        "Content-Disposition": files.download_disposition(evidence.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store",
    }
    return Response(evidence.content, media_type=evidence.content_type, headers=headers)
