"""Voice's scheduled work and listeners: the reconcile loop, calls at session start, hang-ups at session end, and
the satisfaction-survey pass."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.errors import GatewayError
from gateway.events import listen, unlisten
from gateway.notify.sms import SmsSender
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED, get_session
from gateway.voice.calls import CALL_STATE_CHANGED, CallStateChange, write_call_state
from gateway.voice.platform import VoicePlatform
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import LEG_CHANGED, release_session, request_callback
from gateway.voice.settings import SurveySettings, VoiceSettings
from gateway.voice.sink import make_event_sink
from gateway.voice.surveys import SURVEY_WANTED, send_pending_surveys
from gateway.voice.webhook import forget_seen_events

log = logging.getLogger(__name__)
JOB_ID = "voice.reconcile"
SURVEY_JOB_ID = "voice.surveys"


def register(
    scheduler: BaseScheduler, engine: Engine, platform: VoicePlatform, settings: VoiceSettings, clock: Clock
) -> Callable[[], None]:
    """Start the platform's event stream, schedule reconciling and listen to sessions starting and ending.

    Returns the shutdown step: it stops listening and closes the platform's connections (legs stay up; the next
    start resyncs with them).
    """

    def reconcile() -> None:
        reconcile_legs(lambda: session_scope(engine), platform, clock(), settings=settings)
        with session_scope(engine) as db:
            forget_seen_events(db, clock(), settings.webhook)

    def wake(_topic: str, _payload: Any) -> None:
        job = scheduler.get_job(JOB_ID)
        if job is not None:
            job.modify(next_run_time=clock())

    def session_started(topic: str, session_id: Any) -> None:
        if not settings.callback_at_login:
            return
        try:
            with session_scope(engine) as db:
                session = get_session(db, session_id)
                if session is not None:
                    request_callback(db, session, settings, actor="system", now=clock())
        except GatewayError as refused:  # no number yet, or outside policy: the agent's page says so
            log.info("no callback at login for session %s: %s", session_id, refused.message)

    def session_ended(topic: str, session_id: Any) -> None:
        with session_scope(engine) as db:
            release_session(db, session_id, clock())

    def call_state(_topic: str, change: CallStateChange) -> None:
        directory: Path | None = settings.call_state_dir
        if directory is not None:
            write_call_state(directory, change)

    scheduler.add_job(
        reconcile,
        "interval",
        seconds=settings.reconcile_seconds,
        id=JOB_ID,
        next_run_time=clock(),
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
    listeners = [
        (SESSION_STARTED, session_started),
        (SESSION_ENDED, session_ended),
        (LEG_CHANGED, wake),
        (CALL_STATE_CHANGED, call_state),
    ]
    for topic, listener in listeners:
        listen(topic, listener)
    platform.start(make_event_sink(engine, platform, settings, clock))

    def shutdown() -> None:
        for topic, listener in listeners:
            unlisten(topic, listener)
        if scheduler.get_job(JOB_ID) is not None:
            scheduler.remove_job(JOB_ID)
        platform.stop()

    return shutdown


def register_surveys(
    scheduler: BaseScheduler, engine: Engine, sms: SmsSender, settings: SurveySettings, clock: Clock
) -> Callable[[], None]:
    """Send pending satisfaction surveys every ``send_seconds`` and soon after a call ends (the pass runs in the
    scheduler's thread, never in the request or the thread that committed the call's end). Returns the shutdown."""

    def send() -> None:
        sent = send_pending_surveys(lambda: session_scope(engine), sms, settings, clock())
        if sent:
            log.info("sent %d satisfaction surveys", sent)

    def wake(_topic: str, _payload: Any) -> None:
        job = scheduler.get_job(SURVEY_JOB_ID)
        if job is not None:
            job.modify(next_run_time=clock())

    scheduler.add_job(
        send,
        "interval",
        seconds=settings.send_seconds,
        id=SURVEY_JOB_ID,
        next_run_time=clock(),
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
    listen(SURVEY_WANTED, wake)

    def shutdown() -> None:
        unlisten(SURVEY_WANTED, wake)
        if scheduler.get_job(SURVEY_JOB_ID) is not None:
            scheduler.remove_job(SURVEY_JOB_ID)

    return shutdown
