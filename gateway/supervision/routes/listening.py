"""Supervisors' listen / whisper / barge on an agent's customer call (JSON, the session's CSRF header)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.sessions.deps import ScriptCsrf, SupervisorSession
from gateway.supervision.scope import ScopedAgent
from gateway.voice import listening
from gateway.voice.listening import ListenMode

router = APIRouter(tags=["voice"])
CALL = "/supervision/agents/{session_id}/call"


@router.post(CALL + "/{mode}")
def start_listening(
    request: Request,
    supervisor: SupervisorSession,
    _checked: ScriptCsrf,
    _in_scope: ScopedAgent,
    session_id: str,
    mode: ListenMode,
) -> JSONResponse:
    state = request.app.state
    order = listening.listen(
        state.engine,
        getattr(state, "voice_platform", None),
        supervisor,
        session_id,
        mode,
        state.settings.voice,
        state.clock(),
    )
    return JSONResponse({"monitor": order.monitor_id, "mode": order.mode.value, "agent_told": order.tell_agent})


@router.post(CALL + "/{monitor_id}/end")
def end_listening(
    request: Request,
    supervisor: SupervisorSession,
    _checked: ScriptCsrf,
    _in_scope: ScopedAgent,
    session_id: str,
    monitor_id: str,
) -> JSONResponse:
    state = request.app.state
    listening.stop(state.engine, getattr(state, "voice_platform", None), supervisor, session_id, monitor_id)
    return JSONResponse({"ended": monitor_id})
