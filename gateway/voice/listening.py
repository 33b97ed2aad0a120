"""A supervisor listens to an agent's customer call, whispers to the agent only, or barges in — through the PBX.

Asterisk's ARI does each with documented primitives (`gateway/voice/ari.py`): a snoop channel on the agent's callback
leg (``POST /channels/{channelId}/snoop`` with ``spy=both`` to hear both sides, plus ``whisper=out`` so that only the
agent hears the supervisor) in a mixing bridge with the supervisor's phone, or, to barge, the supervisor's phone
added to the leg's own mixing bridge (agent, customer and supervisor all hear each other). The supervisor is called on
their own confirmed callback number. A platform without such primitives (the CTI webhook) is refused clearly.

`plan_listening` decides and audits in the request's transaction; the caller asks the platform after the commit
(`CallListening.start_listening`) and audits a failure in a transaction of its own: no PBX request is made while a
transaction is open. Every start, end, refusal and failure is audited (``voice.listen``); the agent is told (a tone on
their line) when their policy says to tell them about watching (`notify_agent_when_watched`).
"""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import record
from gateway.db import session_scope
from gateway.errors import GatewayError, NotFound
from gateway.policies.service import effective_policy
from gateway.sessions.agents import known_agent
from gateway.sessions.models import HomeSession
from gateway.sessions.service import policy_groups
from gateway.voice.calls import current_call_state
from gateway.voice.dialable import mask
from gateway.voice.errors import ListeningUnsupported, NoCallbackNumber, NothingToListenTo, PlatformUnavailable
from gateway.voice.models import LegState
from gateway.voice.numbers import usable_number
from gateway.voice.platform import CustomerCallKind
from gateway.voice.service import live_leg
from gateway.voice.settings import VoiceSettings

MONITOR_PREFIX = "sohogwmon-"
"""Channel ids of listening calls; deliberately not ``sohogw-`` (callback dials), so they are never taken for legs."""


class ListenMode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


@dataclass(frozen=True, slots=True)
class ListenOrder:
    """One supervisor on one agent's call: which leg and dial, how, and which phone to call for the supervisor."""

    monitor_id: str
    mode: ListenMode
    leg_id: str
    agent_dial_id: str
    supervisor_e164: str
    tell_agent: bool

    @property
    def supervisor_channel(self) -> str:
        return supervisor_channel(self.monitor_id)

    @property
    def snoop_channel(self) -> str:
        return snoop_channel(self.monitor_id)


def supervisor_channel(monitor_id: str) -> str:
    return f"{MONITOR_PREFIX}{monitor_id}-supervisor"


def snoop_channel(monitor_id: str) -> str:
    return f"{MONITOR_PREFIX}{monitor_id}-snoop"


@runtime_checkable
class CallListening(Protocol):
    """What a platform adapter offers for supervisors' listening (the ARI adapter does; the CTI webhook does not)."""

    def start_listening(self, order: ListenOrder) -> None: ...

    def stop_listening(self, monitor_id: str, mode: ListenMode) -> None: ...


def _audit(db: Session, supervisor: HomeSession, agent: HomeSession, outcome: str, detail: dict[str, object]) -> None:
    record(
        db,
        actor=supervisor.login,
        action="voice.listen",
        target=agent.login,
        outcome=outcome,
        detail={"session": agent.id, "person": agent.person_id, "supervisor_person": supervisor.person_id, **detail},
    )


def plan_listening(
    db: Session,
    platform: object,
    supervisor: HomeSession,
    agent_session_id: str,
    mode: ListenMode,
    settings: VoiceSettings,
    now: datetime,
) -> tuple[HomeSession, ListenOrder]:
    """Decide and audit; raises (refusal audited, the caller commits it) when it cannot be done."""
    try:
        agent = known_agent(db, agent_session_id)
    except NotFound as unknown:
        detail = {"session": agent_session_id, "supervisor_person": supervisor.person_id, "mode": mode.value}
        record(
            db,
            actor=supervisor.login,
            action="voice.listen",
            target=agent_session_id,
            outcome="refused",
            detail={**detail, "reason": unknown.message},
        )
        raise
    refusal: GatewayError | None = None
    leg = live_leg(db, agent.id)
    call = current_call_state(db, agent.id)
    number = usable_number(db, supervisor.person_id, settings)
    if not isinstance(platform, CallListening):
        refusal = ListeningUnsupported(
            "this voice platform offers no listening, whisper or barge; use the contact center's own supervisor tools"
        )
    elif leg is None or leg.state is not LegState.CONNECTED or leg.channel_id is None:
        refusal = NothingToListenTo(f"{agent.login} has no connected callback line")
    elif call is None or call.kind is not CustomerCallKind.ANSWERED:
        refusal = NothingToListenTo(f"{agent.login} is not on a customer call now")
    elif number is None:
        refusal = NoCallbackNumber("you have no confirmed callback number to be called on; add one under Voice")
    if refusal is not None:
        _audit(db, supervisor, agent, "refused", {"mode": mode.value, "reason": refusal.message})
        raise refusal
    assert leg is not None and leg.channel_id is not None and number is not None
    tell = effective_policy(db, policy_groups(agent), now).notify_agent_when_watched
    order = ListenOrder(uuid.uuid4().hex, mode, leg.id, leg.channel_id, number.e164, tell)
    started = {"mode": mode.value, "monitor": order.monitor_id, "supervisor_number": mask(number.e164)}
    _audit(db, supervisor, agent, "started", {**started, "told": tell, "leg": leg.id})
    return agent, order


def listen(
    engine: Engine,
    platform: object,
    supervisor: HomeSession,
    agent_session_id: str,
    mode: ListenMode,
    settings: VoiceSettings,
    now: datetime,
) -> ListenOrder:
    """Plan (its refusal committed with its audit row), then ask the platform with no transaction open; a platform
    failure is audited in a transaction of its own and raised."""
    refused: GatewayError | None = None
    with session_scope(engine) as db:
        try:
            agent, order = plan_listening(db, platform, supervisor, agent_session_id, mode, settings, now)
        except GatewayError as refusal:
            refused = refusal
    if refused is not None:
        raise refused
    assert isinstance(platform, CallListening)
    try:
        platform.start_listening(order)
    except PlatformUnavailable as error:
        with session_scope(engine) as db:
            audit_listening_end(db, supervisor, agent, order, "failed", error.message)
        raise
    return order


def stop(engine: Engine, platform: object, supervisor: HomeSession, agent_session_id: str, monitor_id: str) -> None:
    """End one of this supervisor's listenings of this agent on the platform, then audit ``ended``; `NotFound` for
    anything else (another supervisor's, another agent's, unknown)."""
    with session_scope(engine) as db:
        agent = known_agent(db, agent_session_id)
        started = db.exec(
            select(AuditEvent).where(
                AuditEvent.action == "voice.listen",
                AuditEvent.outcome == "started",
                AuditEvent.actor == supervisor.login,
                AuditEvent.target == agent.login,
                col(AuditEvent.detail).contains(f'"monitor": "{monitor_id}"'),
            )
        ).first()
        if started is None or not isinstance(platform, CallListening):
            raise NotFound("no such listening of yours")
        mode = ListenMode(json.loads(started.detail)["mode"])
    platform.stop_listening(monitor_id, mode)
    with session_scope(engine) as db:
        _audit(db, supervisor, agent, "ended", {"mode": mode.value, "monitor": monitor_id})


def audit_listening_end(
    db: Session, supervisor: HomeSession, agent: HomeSession, order: ListenOrder, outcome: str, problem: str = ""
) -> None:
    """``failed``: the platform refused; `problem` says what it answered."""
    _audit(db, supervisor, agent, outcome, {"mode": order.mode.value, "monitor": order.monitor_id, "problem": problem})
