"""The sessions' background work, on the one worker contract: re-validate live sessions, ask the company CAs' CRLs
again (and re-check every certificate at once when one changed; audit any older CRL refused), end idle and expired
sessions and prune throttling rows, and mark ending sessions ended once their children closed. Beside the poll, the
directory's change subscription re-validates within seconds the sessions a directory change touched
(``directory_changes.py``), and an imported policy at once re-validates the live sessions it would end by their
stored groups (``revalidation.policy_candidates``); the poll is their safety net."""

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.directory import DirectoryWatch, open_directory_watch
from gateway.directory.errors import DirectoryUnavailable
from gateway.events import publish
from gateway.pki.trust import record_refused_crls
from gateway.policies.service import POLICY_CHANGED
from gateway.sessions import throttle
from gateway.sessions.directory_changes import subscription_reporter, touched_sessions, watched_containers
from gateway.sessions.endings import LiveChildren, finish_endings
from gateway.sessions.login import LoginServices
from gateway.sessions.revalidation import policy_candidates, revalidate
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED, end_idle_and_expired
from gateway.sessions.settings import HasPortalAndCaSections
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

log = logging.getLogger(__name__)
SWEEP_SECONDS = 10
ENDINGS_SECONDS = 5
DIRECTORY_CHANGED = "directory.changed"
"""Published by the directory's change subscription (payload: the changed DNs and ids, or None: anything may have)."""
SUBSCRIPTION_CHECK_SECONDS = 60


class Revalidation(Worker[bool, None]):
    """Asks the directory and the revocation sources about every live session once per interval in the cluster.
    A policy version coming into force (``policy.changed``, heard by every node) re-validates only the sessions the
    policy would end by their stored groups (``policy_candidates``): those are confirmed by the groups the directory
    gives now, which may hold a join the stored ones miss. An import that ends nobody, the usual one, costs each node
    one read of the live sessions and no directory lookup."""

    name = "sessions.revalidate"

    def __init__(
        self,
        engine: Engine,
        services: LoginServices,
        settings: HasPortalAndCaSections,
        clock: Clock,
        judging: threading.Lock,
    ) -> None:
        self.engine, self.services, self.clock, self.judging = engine, services, clock, judging
        self.grace = timedelta(minutes=settings.portal.revocation_unknown_grace_minutes)
        self.schedule = Schedule(
            interval=timedelta(seconds=settings.portal.revalidate_seconds),
            topics=frozenset({POLICY_CHANGED}),
            scope=Scope.CLUSTER,
        )

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> bool:
        """Whether the pass is a policy's, of its candidates only: the runner gives nudges to a nudge's pass, none to a
        full one."""
        return bool(nudges)

    def apply(self, desired: bool, observed: None) -> None:
        """The directory is asked outside any transaction; each session's outcome commits on its own."""
        only = None
        if desired:
            only = policy_candidates(self.engine, self.clock())
            if not only:
                return
        services = self.services
        with self.judging:  # never at the same time as the change subscription's re-validation on this node
            report = revalidate(self.engine, services.directory, services.authority, services.revocation, self.clock(),
                                self.grace, only)  # fmt: skip
        if report.ended:
            log.info("re-validation ended %d of %d sessions", report.ended, report.checked)


class DirectoryChanges(Worker[tuple[bool, list[str]], None]):
    """Re-validates at once the live sessions a directory change touched: the subscription (an AD change-notification
    search or an OpenLDAP syncrepl, ``gateway.directory.watch``) runs on a thread of its own and only publishes
    ``DIRECTORY_CHANGED``; this worker does the judging. A session that starts may sit in a container nobody watched
    yet, so it asks the subscription to look again. Each node runs its own; a session's ending row lock keeps two
    nodes from ending it twice."""

    name = "sessions.directory_changes"

    def __init__(
        self,
        engine: Engine,
        services: LoginServices,
        settings: HasPortalAndCaSections,
        clock: Clock,
        judging: threading.Lock,
    ) -> None:
        self.engine, self.services, self.clock, self.judging = engine, services, clock, judging
        self.grace = timedelta(minutes=settings.portal.revocation_unknown_grace_minutes)
        self.schedule = Schedule(
            interval=timedelta(seconds=SUBSCRIPTION_CHECK_SECONDS),
            topics=frozenset({DIRECTORY_CHANGED, SESSION_STARTED}),
            interval_covers_nudges=False,  # the changed entries exist only in the nudges
        )
        self.watch: DirectoryWatch | None = None
        self._opened = False

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> tuple[bool, list[str]]:
        """Whether to look again at which containers to watch, and the live sessions the changes touched."""
        rewatch = any(nudge.topic == SESSION_STARTED for nudge in nudges)
        changes = [nudge.payload for nudge in nudges if nudge.topic == DIRECTORY_CHANGED]
        if not changes:
            return rewatch, []
        changed = None if any(c is None for c in changes) else frozenset().union(*changes)
        return rewatch, touched_sessions(db, changed)

    def apply(self, desired: tuple[bool, list[str]], observed: None) -> None:
        rewatch, touched = desired
        if not self._opened:  # the first pass starts the subscription (its thread reconnects by itself)
            self._opened = True
            self.watch = open_directory_watch(
                self.services.directory,
                lambda: watched_containers(self.engine),
                lambda changed: publish(DIRECTORY_CHANGED, changed),
                subscription_reporter(self.engine, self.services.node),
            )
            if self.watch is not None:
                self.watch.start()
        elif rewatch and self.watch is not None:
            self.watch.rewatch()
        if not touched:
            return
        services = self.services
        with self.judging:
            report = revalidate(
                self.engine, services.directory, services.authority, services.revocation, self.clock(), self.grace,
                only=touched,
            )  # fmt: skip
        log.info("directory change: re-validation ended %d of %d touched sessions", report.ended, report.checked)
        if report.directory_unavailable:
            # Raised, the runner keeps the change's nudge and retries with back-off (for NUDGE_ATTEMPTS passes, ~15 s;
            # then the poll is the safety net): a change no pass judged (a deleted or disabled account) would
            # otherwise wait for the poll at once.
            raise DirectoryUnavailable(f"the directory did not answer for {len(touched)} touched session(s)")

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()


class CompanyCrlRefresh(Worker[None, None]):
    """Keeps this node's copies of the company CAs' CRLs fresh; a changed CRL re-checks every certificate at once."""

    name = "sessions.company_crls"

    def __init__(self, engine: Engine, services: LoginServices, settings: HasPortalAndCaSections, clock: Clock) -> None:
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
    engine: Engine,
    services: LoginServices,
    settings: HasPortalAndCaSections,
    clock: Clock,
    children: Sequence[LiveChildren] = (),
) -> list[Worker[Any, Any]]:
    """The sessions' workers; ``children`` are the kinds of child an ending session waits for (``gateway.app``)."""
    judging = threading.Lock()  # the poll and the change subscription never judge sessions at the same time
    return [
        SessionEndings(children, clock),
        Revalidation(engine, services, settings, clock, judging),
        DirectoryChanges(engine, services, settings, clock, judging),
        CompanyCrlRefresh(engine, services, settings, clock),
        SessionSweep(services, clock),
    ]
