"""The sessions' background work, on the one worker contract: re-validate live sessions, ask the company CAs' CRLs
again (and re-check every certificate at once when one changed; audit any older CRL refused), end idle and expired
sessions and prune throttling rows, and mark ending sessions ended once their children closed."""

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.pki.trust import record_refused_crls
from gateway.sessions import throttle
from gateway.sessions.endings import LiveChildren, finish_endings
from gateway.sessions.login import LoginServices
from gateway.sessions.revalidation import revalidate
from gateway.sessions.service import SESSION_ENDED, end_idle_and_expired
from gateway.settings import Settings
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

log = logging.getLogger(__name__)
SWEEP_SECONDS = 10
ENDINGS_SECONDS = 5


class Revalidation(Worker[None, None]):
    """Asks the directory and the revocation sources about every live session; once per interval in the cluster."""

    name = "sessions.revalidate"

    def __init__(self, engine: Engine, services: LoginServices, settings: Settings, clock: Clock) -> None:
        self.engine, self.services, self.clock = engine, services, clock
        self.grace = timedelta(minutes=settings.portal.revocation_unknown_grace_minutes)
        self.schedule = Schedule(interval=timedelta(seconds=settings.portal.revalidate_seconds), scope=Scope.CLUSTER)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        """The directory is asked outside any transaction; each session's outcome commits on its own."""
        services = self.services
        report = revalidate(self.engine, services.directory, services.authority, services.revocation, self.clock(),
                            self.grace)  # fmt: skip
        if report.ended:
            log.info("re-validation ended %d of %d sessions", report.ended, report.checked)


class CompanyCrlRefresh(Worker[None, None]):
    """Keeps this node's copies of the company CAs' CRLs fresh; a changed CRL re-checks every certificate at once."""

    name = "sessions.company_crls"

    def __init__(self, engine: Engine, services: LoginServices, settings: Settings, clock: Clock) -> None:
        self.engine, self.services, self.clock = engine, services, clock
        self.grace = timedelta(minutes=settings.portal.revocation_unknown_grace_minutes)
        self.schedule = Schedule(interval=timedelta(seconds=settings.ca.company_crl_refresh_seconds))

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        now, revocation = self.clock(), self.services.revocation
        # Every held CRL, not only those past their max-age: a CRL fetched by a sign-in 14 s before this pass would
        # otherwise wait for the next one, and a revocation could take two intervals. Unchanged costs a 304.
        changed = revocation.refresh(now, everything=True)
        # The older CRLs this pass refused, and those sign-ins and re-validations refused since the last pass.
        refused = revocation.take_rollbacks()
        if refused:
            with session_scope(self.engine) as db:
                record_refused_crls(db, refused)
        if changed:
            report = revalidate(self.engine, None, self.services.authority, revocation, now, self.grace)
            log.info(
                "company CRL changed (%s): %d of %d sessions ended", ", ".join(changed), report.ended, report.checked
            )


class SessionSweep(Worker[None, None]):
    """Ends sessions nobody used within their idle timeout or past their maximum length; prunes throttling rows.
    Its world is the database: the work is done in the pass's own transaction."""

    name = "sessions.sweep"
    schedule = Schedule(interval=timedelta(seconds=SWEEP_SECONDS), scope=Scope.CLUSTER)

    def __init__(self, services: LoginServices, clock: Clock) -> None:
        self.services, self.clock = services, clock

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        end_idle_and_expired(db, self.clock())
        throttle.prune(db, self.clock(), self.services.limits)

    def apply(self, desired: None, observed: None) -> None:
        return None


class SessionEndings(Worker[None, None]):
    """Marks ending sessions ended once their children closed (``endings.py``): woken by a session ending and by
    each kind of child closing, and every few seconds for the safety net. Its world is the database."""

    name = "sessions.endings"

    def __init__(self, children: Sequence[LiveChildren], clock: Clock) -> None:
        self.children, self.clock = children, clock
        topics = frozenset({SESSION_ENDED, *(child.closed_topic for child in children)})
        self.schedule = Schedule(interval=timedelta(seconds=ENDINGS_SECONDS), topics=topics, scope=Scope.CLUSTER)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        finish_endings(db, self.clock(), self.children)

    def apply(self, desired: None, observed: None) -> None:
        return None


def session_workers(
    engine: Engine, services: LoginServices, settings: Settings, clock: Clock, children: Sequence[LiveChildren] = ()
) -> list[Worker[Any, Any]]:
    """The sessions' workers; ``children`` are the kinds of child an ending session waits for (``gateway.app``)."""
    return [
        SessionEndings(children, clock),
        Revalidation(engine, services, settings, clock),
        CompanyCrlRefresh(engine, services, settings, clock),
        SessionSweep(services, clock),
    ]
