"""The security admin's policy pages: the policy in force explained for a person, import, export, history.

Import goes through `import_policy` (validated first, audited, the running policy untouched on error);
explaining a person's policy and exporting the document are audited here.
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlmodel import col, select

from gateway.audit.service import record
from gateway.deps import ClockDep, DbSession
from gateway.directory import group_identifiers
from gateway.directory.errors import DirectoryError
from gateway.policies.models import PolicyVersion
from gateway.policies.service import InvalidPolicy, current_policy, export_policy, import_policy
from gateway.sessions.deps import CheckedForm, SecurityAdminSession
from gateway.sessions.models import HomeSession
from gateway.web.pages import render
from policy import evaluate

router = APIRouter(prefix="/security-admin/policy", tags=["policy"])
PAGE = "policy_admin.html"


def _groups_of(request: Request, user: str) -> tuple[list[str], str]:
    """The directory groups of `user`, or ([], why not)."""
    try:
        found = request.app.state.login_services.directory.lookup(user)
    except DirectoryError as error:
        return [], str(error)
    return group_identifiers(found.groups), ""


def _page(
    request: Request, db: DbSession, session: HomeSession, status_code: int = 200, **context: object
) -> HTMLResponse:
    versions = db.exec(select(PolicyVersion).order_by(col(PolicyVersion.version).desc())).all()
    context.setdefault("document", export_policy(db))
    return render(request, PAGE, status_code, versions=versions, **context)


@router.get("", response_class=HTMLResponse)
def policy_page(
    request: Request, session: SecurityAdminSession, db: DbSession, clock: ClockDep, user: str = "", groups: str = ""
) -> HTMLResponse:
    """With `user` (looked up in the directory) or `groups` (DNs, ";"-separated): the effective policy, explained."""
    chosen = [g.strip() for g in groups.split(";") if g.strip()]  # ";": a group's DN holds commas
    problem = ""
    if user:
        chosen, problem = _groups_of(request, user)
    if not (user or chosen):
        return _page(request, db, session)
    effective = evaluate(current_policy(db), chosen, clock())
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action="policy.explain",
        target=user or ",".join(chosen),
        outcome="success" if not problem else "directory_error",
        detail={"groups": chosen},
    )
    return _page(request, db, session, subject=user, groups=chosen, problem=problem, effective=effective)


@router.post("/import", response_model=None)
def policy_import(
    request: Request, session: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    document = str(form.get("document", ""))
    try:
        import_policy(
            db,
            document,
            actor=session.login,
            source=session.source_ip,
            now=clock(),
            comment=str(form.get("comment", "")),
            directory_kind=request.app.state.settings.directory_settings.kind,
        )
    except InvalidPolicy as error:  # rendered, not raised: the refusal's audit row commits
        return _page(request, db, session, 422, problems=error.message, document=document)
    return RedirectResponse("/security-admin/policy", status_code=303)


@router.get("/export")
def policy_export(session: SecurityAdminSession, db: DbSession) -> PlainTextResponse:
    document = export_policy(db)
    record(db, actor=session.login, source=session.source_ip, action="policy.export", outcome="success")
    return PlainTextResponse(
        document,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="sohogw-policy.yaml"'},
    )
