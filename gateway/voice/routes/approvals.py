"""The security admins' approval of callback numbers (``voice.changes_need_approval``): a number an agent confirmed
with the texted code is dialled only once a security admin approved it here (audited ``voice.number.approve``)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.db import keep_refusal
from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import NotFound
from gateway.sessions.deps import CheckedForm, SecurityAdminSession
from gateway.voice import numbers
from gateway.web.pages import render

PAGE = "/security-admin/callback-numbers"
approvals_router = APIRouter(tags=["voice"])


@approvals_router.get(PAGE, response_class=HTMLResponse)
def approvals_page(request: Request, admin: SecurityAdminSession, db: DbSession) -> HTMLResponse:
    return render(request, "voice_approvals.html", waiting=numbers.awaiting_approval(db))


@approvals_router.post(PAGE + "/{number_id}/approve")
def approve(
    number_id: RowId, admin: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    try:
        numbers.approve_number(db, number_id, actor=admin.login, now=clock())
    except NotFound:
        keep_refusal(db)  # the refused approval's audit row
        raise
    return RedirectResponse(PAGE, status_code=303)
