"""The security admin's policy pages: the policy in force explained for a person, import, export, history.

Import goes through `import_policy` (validated first, audited, the running policy untouched on error);
explaining a person's policy and exporting the document are audited here.
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import col, select

from gateway.audit.service import record
from gateway.db import fits_column
from gateway.deps import MAX_ROW_ID, ClockDep, DbSession
from gateway.directory import group_identifiers
from gateway.directory.errors import DirectoryError
from gateway.errors import NotFound, TooLong
from gateway.policies.diff import policy_diff
from gateway.policies.errors import InvalidPolicy
from gateway.policies.models import PolicyVersion
from gateway.policies.service import check_policy, current_policy, export_policy, import_policy
from gateway.sessions.deps import CheckedForm, SecurityAdminSession
from gateway.sessions.models import HomeSession
from gateway.web.confirm import CONFIRMED, ask_first, done
from gateway.web.forms import refusal_message
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render
from gateway.web.policy_reasons import explained
from policy import PolicyError, evaluate

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
    language = language_of(request)
    return render(
        request,
        PAGE,
        status_code,
        versions=versions,
        policy_reason=lambda reason: explained(reason, language),
        **context,
    )


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
    document = current_policy(db)
    effective = evaluate(document, chosen, clock())
    # Groups the policy names nothing for grant nothing; say so rather than leave them out silently.
    unknown = [group for group in chosen if group not in effective.groups]
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action="policy.explain",
        target=user or ",".join(chosen),
        outcome="success" if not problem else "directory_error",
        detail={"groups": chosen},
    )
    return _page(
        request, db, session, subject=user, groups=chosen, problem=problem, effective=effective, unknown=unknown
    )


@router.post("/import", response_model=None)
def policy_import(
    request: Request, session: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """Two steps: a document that passes validation is shown as a diff against the running version, and only the
    confirmed second post (``confirmed=yes``) stores it. An invalid document is refused on the page, kept as typed."""
    document = str(form.get("document", ""))
    comment = str(form.get("comment", ""))

    def store() -> PolicyVersion:
        return import_policy(
            db,
            document,
            actor=session.login,
            source=session.source_ip,
            now=clock(),
            comment=comment,
            directory_kind=request.app.state.settings.directory_settings.kind,
        )

    if form.get(CONFIRMED) != "yes":
        try:
            check_policy(document, request.app.state.settings.directory_settings.kind)
            fits_column(comment, PolicyVersion, "comment")
        except (PolicyError, TooLong):
            try:
                store()  # refused again, this time audited, as a refused import is
            except (InvalidPolicy, TooLong) as error:
                return _refused_import(request, db, session, error, document, comment)
        diff = policy_diff(export_policy(db), document)
        return _page(request, db, session, document=document, comment=comment, diff=diff, preview=True)
    try:
        store()
    except (InvalidPolicy, TooLong) as error:
        return _refused_import(request, db, session, error, document, comment)
    return done("/security-admin/policy", "policy_imported")


def _refused_import(
    request: Request,
    db: DbSession,
    session: HomeSession,
    error: InvalidPolicy | TooLong,
    document: str,
    comment: str,
) -> HTMLResponse:
    """The page with the problems (the validator's, or a comment too long for its column, in the person's language)
    and the document and comment as typed; the refusal's audit row (``import_policy`` writes it) commits with the
    request."""
    problems = error.message if isinstance(error, InvalidPolicy) else refusal_message(request, error)
    return _page(request, db, session, 422, problems=problems, document=document, comment=comment)


@router.post("/rollback", response_model=None)
def policy_rollback(
    request: Request, session: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """Put an earlier version back in force, as a new version (history is never rewritten); asked first."""
    typed = str(form.get("version", ""))
    number = int(typed) if typed.isascii() and typed.isdigit() else 0  # "²".isdigit() is true, and int() refuses it
    wanted = db.get(PolicyVersion, number) if 0 < number <= MAX_ROW_ID else None  # PostgreSQL: INTEGER or 500
    if wanted is None:
        raise NotFound("no such policy version", key="policy_version_unknown")
    language = language_of(request)
    question = translate(language, "confirm.policy_rollback", version=wanted.version)
    label = translate(language, "policy.rollback")
    if asked := ask_first(request, form, question=question, confirm_label=label, cancel="/security-admin/policy"):
        return asked
    import_policy(
        db,
        wanted.document,
        actor=session.login,
        source=session.source_ip,
        now=clock(),
        comment=f"rollback to version {wanted.version}",
        directory_kind=request.app.state.settings.directory_settings.kind,
    )
    return done("/security-admin/policy", "policy_restored")


@router.get("/export")
def policy_export(session: SecurityAdminSession, db: DbSession) -> PlainTextResponse:
    document = export_policy(db)
    record(db, actor=session.login, source=session.source_ip, action="policy.export", outcome="success")
    return PlainTextResponse(
        document,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="sohogw-policy.yaml"'},
    )
