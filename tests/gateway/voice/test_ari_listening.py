"""A supervisor listens, whispers or barges in on an agent's customer call through the real ARI adapter; the ARI
STAND-IN (no Asterisk here) receives the snoop, the bridges and the supervisor's call as Asterisk's ARI documents
them. The CTI webhook refuses clearly. Every use and refusal is audited."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.errors import NotFound
from gateway.policies.service import import_policy
from gateway.sessions.models import HomeSession
from gateway.sessions.service import get_session, open_session
from gateway.voice.ari import MONITOR_BRIDGE_PREFIX, AriPlatform, bridge_of
from gateway.voice.errors import ListeningUnsupported, NothingToListenTo
from gateway.voice.listening import ListenMode, ListenOrder, listen, stop
from gateway.voice.models import CallEvent, CallLeg, LegState
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import request_callback
from gateway.voice.settings import VoiceSettings
from gateway.voice.sink import make_event_sink
from tests.gateway.voice.ari_standin import AriStandIn
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, new_session, start_session, wait_for

SUPERVISOR_NUMBER = "+8613912345678"
TOLD = "version: 1\ngroups:\n  SOHO-Agents:\n    roles: [agent]\n"
NOT_TOLD = TOLD + "    supervision: {notify_agent_when_watched: false}\n"
CUSTOMER = "+8613800000001"


@dataclass
class Floor:
    engine: Engine
    settings: VoiceSettings
    platform: AriPlatform
    standin: AriStandIn
    agent_id: str
    supervisor_id: str
    leg: CallLeg

    def sessions(self) -> tuple[HomeSession, HomeSession]:
        with session_scope(self.engine) as db:
            supervisor, agent = get_session(db, self.supervisor_id), get_session(db, self.agent_id)
            assert supervisor is not None and agent is not None
            return supervisor, agent

    def start(self, mode: ListenMode, platform: object | None = None) -> ListenOrder:
        supervisor, _agent = self.sessions()
        return listen(self.engine, platform or self.platform, supervisor, self.agent_id, mode, self.settings, utcnow())

    def audits(self) -> list[tuple[str, str]]:
        with session_scope(self.engine) as db:
            rows = db.exec(select(AuditEvent).where(AuditEvent.action == "voice.listen").order_by(col(AuditEvent.seq)))
            return [(row.actor, row.outcome) for row in rows]


@pytest.fixture
def floor(
    engine: Engine, voice_settings: VoiceSettings, ari_platform: AriPlatform, ari_standin: tuple[AriStandIn, str]
) -> Iterator[Floor]:
    """agent1 is connected and on a customer call; sup1 is signed in with a confirmed number of their own."""
    standin, _url = ari_standin
    with session_scope(engine) as db:
        import_policy(db, TOLD, actor="test", source="", now=utcnow())
        agent = new_session("agent1", utcnow())
        agent.policy_groups = '["SOHO-Agents"]'
        open_session(db, agent)
        supervisor = start_session(db, "sup1", utcnow())
        confirmed_number(db, "agent1", AGENT_NUMBER, voice_settings, utcnow())
        confirmed_number(db, "sup1", SUPERVISOR_NUMBER, voice_settings, utcnow())
        request_callback(db, agent, voice_settings, actor="agent1", now=utcnow())
    ari_platform.start(make_event_sink(engine, ari_platform, voice_settings, utcnow))
    wait_for(lambda: standin.websocket_connects >= 1)

    def leg() -> CallLeg:
        reconcile_legs(lambda: session_scope(engine), ari_platform, utcnow(), settings=voice_settings)
        with session_scope(engine) as db:
            found = db.exec(select(CallLeg).where(CallLeg.session_id == agent.id)).one()
            db.expunge(found)
            return found

    wait_for(lambda: leg().state is LegState.CONNECTED)
    connected = leg()
    standin.customer_call(bridge_of(connected.id), CUSTOMER)
    wait_for(lambda: any(e == ("agent1", "answered") for e in _calls(engine)))
    yield Floor(engine, voice_settings, ari_platform, standin, agent.id, supervisor.id, connected)


def _calls(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as db:
        rows = db.exec(select(CallEvent).where(col(CallEvent.kind).startswith("call.")))
        return [(row.login, row.kind.removeprefix("call.")) for row in rows]


def test_listening_snoops_both_directions_and_bridges_the_supervisors_phone(floor: Floor) -> None:
    order = floor.start(ListenMode.LISTEN)
    assert floor.standin.snoops == [
        {
            "channel": floor.leg.channel_id,
            "spy": "both",
            "whisper": "none",
            "app": floor.settings.ari.application,
            "appArgs": f"listen,{order.monitor_id}",
            "snoopId": order.snoop_channel,
        }
    ]
    bridge = floor.standin.bridges[f"{MONITOR_BRIDGE_PREFIX}{order.monitor_id}"]
    assert bridge["bridge_type"] == "mixing"
    assert floor.standin.channels[order.supervisor_channel]["connected"]["number"] == SUPERVISOR_NUMBER
    wait_for(lambda: bridge["channels"] == [order.snoop_channel, order.supervisor_channel])
    assert floor.standin.played == [(floor.leg.channel_id, "sound:beep")], "policy tells the agent by default"
    assert floor.audits() == [("sup1", "started")]


def test_a_whisper_reaches_the_agent_only_who_is_not_told_when_policy_says_not_to(floor: Floor) -> None:
    with session_scope(floor.engine) as db:
        import_policy(db, NOT_TOLD, actor="test", source="", now=utcnow())
    order = floor.start(ListenMode.WHISPER)
    assert not order.tell_agent and floor.standin.played == []
    snoop = floor.standin.snoops[-1]
    assert (snoop["spy"], snoop["whisper"], snoop["channel"]) == ("both", "out", floor.leg.channel_id)
    customer_side = floor.standin.bridges[bridge_of(floor.leg.id)]["channels"]
    assert order.supervisor_channel not in customer_side, "the customer's bridge never gets the supervisor"


def test_barging_in_puts_the_supervisor_into_the_agents_own_bridge_and_stopping_removes_it(floor: Floor) -> None:
    order = floor.start(ListenMode.BARGE)
    assert floor.standin.snoops == []
    leg_bridge = floor.standin.bridges[bridge_of(floor.leg.id)]
    wait_for(lambda: order.supervisor_channel in leg_bridge["channels"])
    assert floor.leg.channel_id in leg_bridge["channels"] and len(leg_bridge["channels"]) == 3
    supervisor, _agent = floor.sessions()
    with pytest.raises(NotFound):
        stop(floor.engine, floor.platform, supervisor, floor.supervisor_id, order.monitor_id)  # not that agent's
    stop(floor.engine, floor.platform, supervisor, floor.agent_id, order.monitor_id)
    assert order.supervisor_channel in floor.standin.deleted
    wait_for(lambda: order.supervisor_channel not in leg_bridge["channels"])
    assert floor.leg.channel_id in leg_bridge["channels"], "the agent and the customer stay connected"
    assert floor.audits() == [("sup1", "started"), ("sup1", "ended")]


def test_without_a_call_or_on_the_cti_webhook_it_is_refused_and_audited(floor: Floor) -> None:
    with pytest.raises(ListeningUnsupported):
        floor.start(ListenMode.LISTEN, platform=object())
    floor.standin.customer_hangs_up(floor.standin.bridges[bridge_of(floor.leg.id)]["channels"][-1])
    wait_for(lambda: ("agent1", "ended") in _calls(floor.engine))
    with pytest.raises(NothingToListenTo):
        floor.start(ListenMode.BARGE)
    assert floor.audits() == [("sup1", "refused"), ("sup1", "refused")]
    assert floor.standin.snoops == [] and len(floor.standin.originated) == 1
