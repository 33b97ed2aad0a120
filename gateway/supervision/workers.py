"""Supervision's background work, on the one worker contract: run the alert rules and send what they raised, and end
work-state stretches with their sessions. (The wall is a worker too: ``wall.py``.)

An alert is raised within ``alert_check_seconds`` (≤ 5 s) of its condition, plus the time to send it. A session's
open stretch is closed right after the commit that ends the session (a ``SESSION_ENDED`` nudge), and every interval
for any session no longer active (the safety net), and so are the help requests they left unanswered.
Certificate-expiry warnings from the PKI are hooked into alerts. Each alert pass also ends the screen wall's grid
watches whose grid stopped asking.
"""

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.clock import Clock, as_utc
from gateway.db import session_scope
from gateway.pki.expiry import on_expiring
from gateway.sessions.service import SESSION_ENDED
from gateway.supervision.alerts import certificate_expiry_alerts, check_alerts
from gateway.supervision.delivery import deliver_pending
from gateway.supervision.errors import NoLiveAgent
from gateway.supervision.help import close_unanswered, request_help
from gateway.supervision.models import HelpRequest
from gateway.supervision.monitoring import end_lapsed_grid_watches
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import close_ended_stretches
from gateway.voice.help import HELP_AUDIT_ACTION, HELP_KEYED
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

log = logging.getLogger(__name__)


class AlertRules(Worker[None, None]):
    """Evaluates the polled alert rules once per interval in the cluster, then sends what is pending."""

    name = "supervision.alerts"

    def __init__(self, engine: Engine, settings: SupervisionSettings, clock: Clock) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.schedule = Schedule(interval=timedelta(seconds=settings.alert_check_seconds), scope=Scope.CLUSTER)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        """Rules in their own unit of work (a unique alert another node opened first is not a failure), then the
        SMS and mail outside any transaction."""
        try:
            with session_scope(self.engine) as db:
                check_alerts(db, self.settings, self.clock())
                end_lapsed_grid_watches(db, self.clock())
                close_unanswered(db, self.clock())
        except IntegrityError:
            log.info("another node opened the same alert a moment ago; its alert stands")
        deliver_pending(self.engine, self.settings)


class StretchCloser(Worker[None, None]):
    """Closes the open work-state stretches of ended sessions: the nudged ones at once, all of them every interval.
    Its world is the database: the work is done in the pass's own transaction."""

    name = "supervision.stretches"

    def __init__(self, settings: SupervisionSettings, clock: Clock) -> None:
        self.clock = clock
        self.schedule = Schedule(
            interval=timedelta(seconds=settings.alert_check_seconds), topics=frozenset({SESSION_ENDED})
        )

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        ended = [str(n.payload) for n in nudges] if nudges else None
        close_ended_stretches(db, self.clock(), ended)
        if ended:
            close_unanswered(db, self.clock(), ended)

    def apply(self, desired: None, observed: None) -> None:
        return None


PHONE_HELP_SECONDS = 30


class PhoneHelpRequests(Worker[None, None]):
    """Turns help codes keyed on the phone (the voice domain's ``HELP_KEYED``) into "need help" flags on the wall; its
    interval pass does the same for key presses of the last two intervals whose nudge was lost. Its world is the
    database: the work is done in the pass's own transaction."""

    name = "supervision.phone_help"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.schedule = Schedule(interval=timedelta(seconds=PHONE_HELP_SECONDS), topics=frozenset({HELP_KEYED}))

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        now = self.clock()
        keyed = [(str(n.payload), now) for n in nudges] if nudges else self._keyed_lately(db, now)
        for session_id, at in keyed:
            asked = db.exec(
                select(HelpRequest.id).where(HelpRequest.session_id == session_id, col(HelpRequest.requested_at) >= at)
            ).first()
            if asked is None:
                try:
                    request_help(db, session_id, "phone", now)
                except NoLiveAgent:
                    log.info("help keyed on the phone for session %s, which is no longer live", session_id)

    def _keyed_lately(self, db: Session, now: datetime) -> list[tuple[str, datetime]]:
        since = now - 2 * self.schedule.interval
        rows = db.exec(
            select(AuditEvent.detail, AuditEvent.at).where(
                AuditEvent.action == HELP_AUDIT_ACTION, col(AuditEvent.at) >= since
            )
        ).all()
        return [(str(json.loads(detail).get("session", "")), as_utc(at)) for detail, at in rows]

    def apply(self, desired: None, observed: None) -> None:
        return None


def supervision_workers(engine: Engine, settings: SupervisionSettings, clock: Clock) -> list[Worker[Any, Any]]:
    """The workers, and the PKI's expiry warnings hooked into alerts."""
    certificate_expiry_alerts.clock = clock
    on_expiring(certificate_expiry_alerts)
    return [AlertRules(engine, settings, clock), StretchCloser(settings, clock), PhoneHelpRequests(clock)]
