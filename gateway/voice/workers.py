"""Voice's background work, on the one worker contract: the legs made to match the sessions.

``voice.legs`` wakes when a session starts (a callback is requested, if the settings ask for one at login), when a
session ends (its legs are released), when a leg changed, and every ``reconcile_seconds``; each pass then makes the
platform match the legs (``reconcile.py``: its own short units of work around each platform request). A call-state
change is written to the agent's console file in the same thread. The platform's event stream (ARI's websocket
thread) is started by the first pass and closed at stop; each event it receives commits in its own unit of work
(``sink.py``), never inside another transaction's commit. ``voice.surveys`` sends the satisfaction surveys that
customer calls' ends planned.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.errors import GatewayError
from gateway.notify.sms import SmsSender
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED, get_session
from gateway.voice.calls import CALL_STATE_CHANGED, CallStateChange, write_call_state
from gateway.voice.models import CallLeg
from gateway.voice.platform import VoicePlatform
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import LEG_CHANGED, release_session, request_callback
from gateway.voice.settings import SurveySettings, VoiceSettings
from gateway.voice.sink import make_event_sink
from gateway.voice.surveys import SURVEY_WANTED, retry_unconfirmed, send_pending_surveys
from gateway.voice.webhook import forget_seen_events
from gateway.workers.contract import Nudge, Schedule, Worker

log = logging.getLogger(__name__)


@dataclass
class LegPass:
    """What one pass does besides reconciling: callbacks to request, call states to write, old events to forget."""

    started: list[str] = field(default_factory=list)
    call_states: list[CallStateChange] = field(default_factory=list)
    interval: bool = False


class CallLegs(Worker[LegPass, None]):
    name = "voice.legs"

    def __init__(self, engine: Engine, platform: VoicePlatform, settings: VoiceSettings, clock: Clock) -> None:
        self.engine, self.platform, self.settings, self.clock = engine, platform, settings, clock
        self.schedule = Schedule(
            interval=timedelta(seconds=settings.reconcile_seconds),
            topics=frozenset({SESSION_STARTED, SESSION_ENDED, LEG_CHANGED, CALL_STATE_CHANGED}),
            interval_covers_nudges=False,  # a callback at login and a call's new state exist only in the nudges
        )
        self._streaming = False

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> LegPass:
        """Releases the legs of ended sessions in the pass's transaction; the rest is for ``apply``."""
        work = LegPass(interval=not nudges)
        for nudge in nudges:
            if nudge.topic == SESSION_ENDED:
                release_session(db, str(nudge.payload), self.clock())
            elif nudge.topic == SESSION_STARTED and self.settings.callback_at_login:
                work.started.append(str(nudge.payload))
            elif nudge.topic == CALL_STATE_CHANGED:
                work.call_states.append(nudge.payload)
        return work

    def apply(self, desired: LegPass, observed: None) -> None:
        if not self._streaming:
            self.platform.start(make_event_sink(self.engine, self.platform, self.settings, self.clock))
            self._streaming = True
        for session_id in desired.started:
            self._call_back(session_id)
        reconcile_legs(lambda: session_scope(self.engine), self.platform, self.clock(), settings=self.settings)
        if desired.interval:
            with session_scope(self.engine) as db:
                forget_seen_events(db, self.clock(), self.settings.webhook)
        if self.settings.call_state_dir is not None:
            for change in desired.call_states:
                try:
                    write_call_state(self.settings.call_state_dir, change)
                except OSError as error:  # one console's file (a full disk) must not fail the pass and replay it
                    log.warning("call state of session %s not written: %s", change.session_id, error)

    def _call_back(self, session_id: str) -> None:
        """Each callback in its own unit of work: one refused (no number yet, outside policy) spoils no other. Once
        per session: a pass retried after a failure replays its nudges, and must not ring the agent again."""
        try:
            with session_scope(self.engine) as db:
                session = get_session(db, session_id)
                called = db.exec(select(CallLeg.id).where(CallLeg.session_id == session_id)).first() is not None
                if session is not None and not called:
                    request_callback(db, session, self.settings, actor="system", now=self.clock())
        except GatewayError as refused:  # the agent's page says why
            log.info("no callback at login for session %s: %s", session_id, refused.message)

    def stop(self) -> None:
        """Closes the platform's connections; legs stay up, and the next start resyncs with them."""
        if self._streaming:
            self.platform.stop()


class SatisfactionSurveys(Worker[None, None]):
    """Sends the pending satisfaction surveys: at once when a customer call's end planned one (``SURVEY_WANTED``),
    and every ``send_seconds`` for the rest. Each survey is taken (``pending`` → ``sending``, committed) before its text
    goes out, so two passes or two nodes never send it at once; the text goes out with no transaction open. Every
    pass first sweeps the attempts left unconfirmed (``retry_unconfirmed``), in the pass's own transaction, so a
    survey a dead node or a hung SMS gateway left ``sending`` is sent again in the same pass."""

    name = "voice.surveys"

    def __init__(self, engine: Engine, sms: SmsSender, settings: SurveySettings, clock: Clock) -> None:
        self.engine, self.sms, self.settings, self.clock = engine, sms, settings, clock
        self.schedule = Schedule(interval=timedelta(seconds=settings.send_seconds), topics=frozenset({SURVEY_WANTED}))

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        if swept := retry_unconfirmed(db, self.settings, self.clock()):
            log.warning("%d satisfaction surveys had no recorded outcome past the bound: retried or failed", swept)

    def apply(self, desired: None, observed: None) -> None:
        sent = send_pending_surveys(lambda: session_scope(self.engine), self.sms, self.settings, self.clock())
        if sent:
            log.info("sent %d satisfaction surveys", sent)
