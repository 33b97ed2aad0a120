"""Supervisors play an agent's recordings: every playback and every refusal audited (``recording.play``).

A recording is reached only through the agent's session (team scope checked first by the route's `ScopedAgent`) and must
belong to it; anything else is a 404 whose refusal is audited in the same (committed) transaction.
"""

from collections.abc import Iterator

from sqlmodel import Session

from desktop_broker.recording.sealing import open_sealed
from gateway.errors import NotFound
from gateway.seats.errors import PlaybackRefused
from gateway.seats.models import ScreenRecording
from gateway.seats.recording_files import RecordingFiles
from gateway.seats.recordings import audit_playback, playable, session_recordings
from gateway.sessions.agents import known_agent
from gateway.sessions.models import HomeSession


def agents_recordings(
    db: Session, supervisor: HomeSession, agent_session_id: str
) -> tuple[HomeSession, list[ScreenRecording]]:
    agent = known_agent(db, agent_session_id)
    return agent, session_recordings(db, agent.id)


def recording_for(
    db: Session, supervisor: HomeSession, agent_session_id: str, recording_id: str, source: str
) -> tuple[HomeSession, ScreenRecording]:
    """The agent and the recording the supervisor may play; `PlaybackRefused` (audited) otherwise."""
    try:
        agent = known_agent(db, agent_session_id)
        return agent, playable(db, agent, recording_id)
    except NotFound as refusal:
        detail = {"agent_session": agent_session_id, "reason": refusal.message}
        audit_playback(db, supervisor=supervisor, target=recording_id, outcome="refused", source=source, detail=detail)
        raise PlaybackRefused("no such recording of this agent") from None


def play(
    db: Session, supervisor: HomeSession, agent_session_id: str, recording_id: str, source: str, files: RecordingFiles
) -> Iterator[bytes]:
    """The decrypted recording, chunk by chunk, for the player; the playback is audited before a byte is sent."""
    agent, recording = recording_for(db, supervisor, agent_session_id, recording_id, source)
    detail = {"agent": agent.login, "person": recording.person_id, "session": agent.id, "call": recording.call_event_id}
    audit_playback(db, supervisor=supervisor, target=recording.id, outcome="played", source=source, detail=detail)
    return open_sealed(files.key(), recording.id, files.sealed_file(recording.id))
