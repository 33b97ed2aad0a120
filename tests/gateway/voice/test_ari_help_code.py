"""Help from the phone: the help code keyed on the connected callback reaches the help hook (audited) and the
wall's "need help" flag, other keys do not; the real ARI adapter against the ARI STAND-IN's ChannelDtmfReceived."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.supervision.models import HelpRequest
from gateway.supervision.workers import PhoneHelpRequests
from gateway.voice.ari import AriPlatform
from gateway.voice.models import CallLeg, LegState
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import request_callback
from gateway.voice.settings import VoiceSettings
from gateway.voice.sink import make_event_sink
from tests.gateway.voice.ari_standin import AriStandIn
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session, wait_for
from tests.support.workers import one_pass, running
from tests.support.workers import wait_for as workers_wait_for


@pytest.fixture
def connected(
    engine: Engine, voice_settings: VoiceSettings, ari_standin: tuple[AriStandIn, str]
) -> Iterator[tuple[AriStandIn, str]]:
    standin, url = ari_standin
    voice_settings.ari.url = url
    platform = AriPlatform(voice_settings.ari, help_code="*9")
    with session_scope(engine) as db:
        session = start_session(db, "agent1", utcnow())
        confirmed_number(db, "agent1", AGENT_NUMBER, voice_settings, utcnow())
        request_callback(db, session, voice_settings, actor="agent1", now=utcnow())
    platform.start(make_event_sink(engine, platform, voice_settings, utcnow))
    try:
        wait_for(lambda: standin.websocket_connects >= 1)

        def leg() -> CallLeg:
            reconcile_legs(lambda: session_scope(engine), platform, utcnow(), settings=voice_settings)
            with session_scope(engine) as db:
                found = db.exec(select(CallLeg).where(CallLeg.session_id == session.id)).one()
                db.expunge(found)
                return found

        wait_for(lambda: leg().state is LegState.CONNECTED)
        assert leg().channel_id is not None
        yield standin, str(leg().channel_id)
    finally:
        platform.stop()


def _help_rows(engine: Engine) -> list[AuditEvent]:
    with session_scope(engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "voice.help").order_by(col(AuditEvent.seq))
        return list(db.exec(query).all())


def test_the_help_code_on_the_line_reaches_the_help_hook_and_other_keys_do_not(
    engine: Engine, connected: tuple[AriStandIn, str]
) -> None:
    standin, channel = connected
    for digit in "9*89":  # no "*9" in a row yet
        standin.press(channel, digit)
    standin.press(channel, "*")
    standin.press(channel, "9")
    wait_for(lambda: len(_help_rows(engine)) == 1)
    row = _help_rows(engine)[0]
    assert (row.actor, row.outcome) == ("agent1", "requested") and '"source": "phone"' in row.detail
    standin.press(channel, "1")
    standin.press(channel, "*")
    standin.press(channel, "9")
    wait_for(lambda: len(_help_rows(engine)) == 2)


def _help_flags(engine: Engine) -> list[HelpRequest]:
    with session_scope(engine) as db:
        return list(db.exec(select(HelpRequest).where(HelpRequest.source == "phone")).all())


def test_the_help_code_puts_the_need_help_flag_on_the_wall_through_supervisions_worker(
    engine: Engine, connected: tuple[AriStandIn, str]
) -> None:
    """The key press nudges ``HELP_KEYED`` after its commit; supervision's worker raises the flag at once."""
    standin, channel = connected
    with running([PhoneHelpRequests(utcnow)], engine):
        standin.press(channel, "*")
        standin.press(channel, "9")
        assert workers_wait_for(lambda: len(_help_flags(engine)) == 1)
    assert _help_flags(engine)[0].login == "agent1"


def test_a_key_press_whose_nudge_was_lost_is_flagged_by_the_interval_pass(
    engine: Engine, connected: tuple[AriStandIn, str]
) -> None:
    """No worker listens while the code is keyed (the nudge is lost); the next interval pass reads the audit row."""
    standin, channel = connected
    standin.press(channel, "*")
    standin.press(channel, "9")
    wait_for(lambda: len(_help_rows(engine)) == 1)
    assert _help_flags(engine) == []
    one_pass(engine, PhoneHelpRequests(utcnow))
    assert len(_help_flags(engine)) == 1
    one_pass(engine, PhoneHelpRequests(utcnow))
    assert len(_help_flags(engine)) == 1, "a key press is flagged once"
