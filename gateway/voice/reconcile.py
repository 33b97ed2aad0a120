"""Make the platform match the legs in the database; idempotent, run on every nudge and on a timer.

A pass never holds a transaction while it talks to the platform (a PBX request can take seconds, and on SQLite
an open write transaction is the whole database's write lock). It runs in three steps: (a) ``intent.plan`` decides
and commits what it will ask, dial ids included; (b) the platform is asked with no transaction open; (c) each
answer is recorded in a short transaction of its own (``intent.record``).
"""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlmodel import Session

from gateway.voice.errors import PlatformUnavailable
from gateway.voice.intent import ReconcileReport, Step, StepKind, judgeable_dials, plan, record
from gateway.voice.platform import VoicePlatform
from gateway.voice.settings import VoiceSettings

log = logging.getLogger(__name__)

UnitOfWork = Callable[[], AbstractContextManager[Session]]
"""Opens one transaction that commits when its block ends, e.g. ``lambda: session_scope(engine)``."""


def reconcile_legs(
    unit: UnitOfWork, platform: VoicePlatform, now: datetime, *, settings: VoiceSettings, resync: bool = False
) -> ReconcileReport:
    """One pass; safe to run any number of times, on any node.

    ``resync`` also compares legs with the dials the platform still holds. The adapter asks for it after its event
    stream was interrupted; it is not done on every pass because a dial that just ended may not have had its event
    applied yet, and the event carries the cause that the comparison cannot know.
    """
    report = ReconcileReport()
    live: set[str] | None = None
    judgeable: set[str] = set()
    if resync:
        with unit() as db:  # read before asking, so a dial requested meanwhile is not taken for lost
            judgeable = judgeable_dials(db, now)
        try:
            live = platform.live_dials()
        except PlatformUnavailable as error:
            report.problems.append(error.message)
    with unit() as db:
        steps = plan(db, now, settings, report, live=live, judgeable=judgeable)
    for step in steps:
        refused = _ask(platform, step)
        with unit() as db:
            record(db, step, refused, settings, now, report)
    for problem in report.problems:
        log.warning("voice reconcile: %s", problem)
    return report


def _ask(platform: VoicePlatform, step: Step) -> PlatformUnavailable | None:
    """Carry out one step; the platform's refusal is returned to be recorded, not raised."""
    try:
        if step.kind is StepKind.DIAL:
            platform.originate_callback(step.order)
        elif step.kind is StepKind.HANG_UP:
            platform.hang_up(step.order)
        else:
            platform.set_ready(step.order, step.ready)
    except PlatformUnavailable as refused:
        return refused
    return None
