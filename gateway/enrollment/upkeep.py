"""The scheduled upkeep of vetting data: re-check reminders and the purge of closed applications."""

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.enrollment.models import (
    Application,
    ApplicationState,
    CertificateRequest,
    EnvcheckRun,
    Evidence,
    StageDecision,
)
from gateway.enrollment.queries import due_rechecks

log = logging.getLogger(__name__)
PURGED_STATES = (ApplicationState.REJECTED, ApplicationState.WITHDRAWN)


def remind_due_rechecks(db: Session, now: datetime) -> list[Application]:
    """Approved agents whose re-check came due and who were not reminded since: one audit row (the reminder HR's
    list shows) per agent, once per due date."""
    reminded = []
    for application in due_rechecks(db, now):
        due = as_utc(application.recheck_due_at) if application.recheck_due_at else now
        if application.reminded_at is not None and as_utc(application.reminded_at) >= due:
            continue
        application.reminded_at = now
        db.add(application)
        record(
            db,
            actor="system",
            action="enrollment.recheck_due",
            target=application.login,
            outcome="reminded",
            detail={"application": application.id, "due": due.isoformat()},
            clock=lambda: now,
        )
        reminded.append(application)
    db.flush()
    if reminded:
        log.info("re-check due for %s", ", ".join(a.login for a in reminded))
    return reminded


def purge_closed(db: Session, now: datetime, retention: timedelta) -> int:
    """Delete rejected and withdrawn applications closed longer ago than ``retention``, with everything vetting
    gathered about them. The audit row keeps only their numbers, not the people."""
    cutoff = now - retention
    ids = list(
        db.exec(
            select(Application.id).where(
                col(Application.state).in_(PURGED_STATES),
                col(Application.closed_at) < cutoff,
                col(Application.revocation_owed_since).is_(None),  # kept until the revocations it owes are done
            )
        ).all()
    )
    if not ids:
        return 0
    for table in (Evidence, StageDecision, EnvcheckRun):
        db.execute(delete(table).where(col(table.application_id).in_(ids)))
    db.execute(delete(CertificateRequest).where(col(CertificateRequest.application_id).in_(ids)))
    db.execute(delete(Application).where(col(Application.id).in_(ids)))
    record(
        db,
        actor="system",
        action="enrollment.purge",
        outcome="deleted",
        detail={"applications": ids, "closed_before": cutoff.isoformat()},
        clock=lambda: now,
    )
    return len(ids)
