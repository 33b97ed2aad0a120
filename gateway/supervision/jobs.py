"""Supervision's scheduled job and listener: run the alert rules and send what they raised, every few seconds, and
end work-state stretches with their sessions.

An alert is raised within ``alert_check_seconds`` (≤ 5 s) of its condition, plus the time to send it. A session's
open stretch is closed right after the commit that ends the session (``SESSION_ENDED``); each alert pass also closes
the stretches of every session no longer active (the reconcile safety net). Certificate-expiry warnings from the
PKI are hooked into alerts. Each pass also ends the screen wall's grid watches whose grid stopped asking, and
closes the help requests of sessions that ended unanswered.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.events import listen, unlisten
from gateway.pki.expiry import on_expiring
from gateway.sessions.service import SESSION_ENDED
from gateway.supervision.alerts import certificate_expiry_alerts, check_alerts
from gateway.supervision.delivery import deliver_pending
from gateway.supervision.help import close_unanswered
from gateway.supervision.monitoring import end_lapsed_grid_watches
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import close_ended_stretches

log = logging.getLogger(__name__)


def run_alert_rules(engine: Engine, settings: SupervisionSettings, clock: Clock) -> None:
    try:
        with session_scope(engine) as db:
            check_alerts(db, settings, clock())
            end_lapsed_grid_watches(db, clock())
            close_unanswered(db, clock())
    except IntegrityError:
        log.info("another node opened the same alert a moment ago; its alert stands")
    deliver_pending(engine, settings)


@dataclass(frozen=True)
class StretchCloser:
    """The ``SESSION_ENDED`` listener: runs after the session's end committed, in a transaction of its own."""

    engine: Engine
    clock: Clock

    def __call__(self, _topic: str, session_id: Any) -> None:
        with session_scope(self.engine) as db:
            close_ended_stretches(db, self.clock(), [str(session_id)])
            close_unanswered(db, self.clock(), [str(session_id)])


def register(
    scheduler: BaseScheduler, engine: Engine, settings: SupervisionSettings, clock: Clock
) -> Callable[[], None]:
    """Schedule the alert pass and listen for ended sessions; returns what stops listening (call it at shutdown)."""
    certificate_expiry_alerts.clock = clock
    on_expiring(certificate_expiry_alerts)
    closer = StretchCloser(engine, clock)
    listen(SESSION_ENDED, closer)
    scheduler.add_job(
        run_alert_rules,
        "interval",
        args=(engine, settings, clock),
        seconds=settings.alert_check_seconds,
        id="supervision.alerts",
        next_run_time=clock(),
        max_instances=1,
        coalesce=True,
    )
    return lambda: unlisten(SESSION_ENDED, closer)
