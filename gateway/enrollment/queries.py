"""HR's reads of vetting data: the filtered list and one application in full. Every read is audited."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.enrollment.models import Application, ApplicationState, Evidence, EvidenceKind, StageDecision
from gateway.enrollment.service import get_application


@dataclass(frozen=True)
class ApplicationDetail:
    application: Application
    decisions: list[StageDecision]
    evidence: list[Evidence]
    """Loaded without their content: the page lists them, a download reads one."""
    environment_checks: list[dict[str, Any]]


@dataclass(frozen=True)
class ApplicationFilter:
    state: ApplicationState | None = None
    stage: str | None = None
    login: str | None = None
    recheck_due: bool = False


def list_applications(db: Session, wanted: ApplicationFilter, *, actor: str, now: datetime) -> list[Application]:
    query = select(Application).order_by(col(Application.id).desc())
    if wanted.state is not None:
        query = query.where(Application.state == wanted.state)
    if wanted.stage:
        query = query.where(Application.stage == wanted.stage)
    if wanted.login:
        query = query.where(col(Application.login).contains(wanted.login))
    if wanted.recheck_due:
        query = query.where(Application.state == ApplicationState.APPROVED)
        query = query.where(col(Application.recheck_due_at) <= now)
    found = list(db.exec(query.limit(500)).all())
    record(
        db,
        actor=actor,
        action="enrollment.list",
        outcome="read",
        detail={"filter": {k: v for k, v in vars(wanted).items() if v}, "rows": len(found)},
        clock=lambda: now,
    )
    return found


def application_detail(db: Session, application_id: int, *, actor: str, now: datetime) -> ApplicationDetail:
    application = get_application(db, application_id)
    decisions = db.exec(
        select(StageDecision).where(StageDecision.application_id == application.id).order_by(col(StageDecision.id))
    ).all()
    evidence = db.exec(
        select(Evidence)
        .options(defer(Evidence.content))  # type: ignore[arg-type]
        .where(Evidence.application_id == application.id)
        .order_by(col(Evidence.id))
    ).all()
    checks = db.exec(
        select(Evidence.content)
        .where(Evidence.application_id == application.id, Evidence.kind == EvidenceKind.ENVIRONMENT_CHECK)
        .order_by(col(Evidence.id))
    ).all()
    record(
        db,
        actor=actor,
        action="enrollment.read",
        target=application.login,
        outcome="read",
        detail={"application": application.id},
        clock=lambda: now,
    )
    return ApplicationDetail(application, list(decisions), list(evidence), [json.loads(c) for c in checks])


def due_rechecks(db: Session, now: datetime) -> list[Application]:
    """Approved agents whose periodic re-check date has come."""
    query = select(Application).where(
        Application.state == ApplicationState.APPROVED, col(Application.recheck_due_at) <= now
    )
    return list(db.exec(query.order_by(col(Application.recheck_due_at))).all())
