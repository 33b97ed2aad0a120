"""Supervision's scheduled job: run the alert rules and send what they raised, every few seconds.

An alert is raised within ``alert_check_seconds`` (≤ 5 s) of its condition, plus the time to send it. The job also
closes work-state stretches of ended sessions (the reconcile safety net) and hooks certificate-expiry warnings
from the PKI into alerts.
"""

import logging

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.pki.expiry import on_expiring
from gateway.supervision.alerts import certificate_expiry_alerts, check_alerts
from gateway.supervision.delivery import deliver_pending
from gateway.supervision.settings import SupervisionSettings

log = logging.getLogger(__name__)


def run_alert_rules(engine: Engine, settings: SupervisionSettings, clock: Clock) -> None:
    try:
        with session_scope(engine) as db:
            check_alerts(db, settings, clock())
    except IntegrityError:
        log.info("another node opened the same alert a moment ago; its alert stands")
    deliver_pending(engine, settings)


def register(scheduler: BaseScheduler, engine: Engine, settings: SupervisionSettings, clock: Clock) -> None:
    certificate_expiry_alerts.clock = clock
    on_expiring(certificate_expiry_alerts)
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
