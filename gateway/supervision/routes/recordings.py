"""Supervisors' pages for an agent's screen recordings: the list, the player (guacamole-common-js's
``Guacamole.SessionRecording``, seekable) and the decrypted stream it plays."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from gateway.deps import DbSession
from gateway.errors import Unavailable
from gateway.seats import recording_playback
from gateway.seats.errors import PlaybackRefused
from gateway.seats.recording_files import RecordingFiles
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import SupervisorSession
from gateway.supervision.scope import ScopedAgentOfAnyState
from gateway.web.pages import render

router = APIRouter()
RECORDINGS = "/supervision/agents/{session_id}/recordings"


def _files(request: Request) -> RecordingFiles:
    """This node's recordings, as its broker keeps them."""
    recorders = getattr(getattr(request.app.state, "seat_broker", None), "recorders", None)
    if recorders is None:
        raise Unavailable("screen recording is not set up on this gateway node")
    return recorders.files  # type: ignore[no-any-return]


@router.get(RECORDINGS, response_class=HTMLResponse)
def recordings_page(
    request: Request, supervisor: SupervisorSession, _in_scope: ScopedAgentOfAnyState, db: DbSession, session_id: str
) -> HTMLResponse:
    agent, rows = recording_playback.agents_recordings(db, supervisor, session_id)
    return render(request, "recordings_list.html", agent=agent, recordings=rows)


@router.get(RECORDINGS + "/{recording_id}", response_class=HTMLResponse)
def player_page(
    request: Request,
    supervisor: SupervisorSession,
    _in_scope: ScopedAgentOfAnyState,
    db: DbSession,
    session_id: str,
    recording_id: str,
) -> Response:
    try:
        agent, recording = recording_playback.recording_for(
            db, supervisor, session_id, recording_id, client_address(request)
        )
    except PlaybackRefused as refused:  # answered, not raised: the audited refusal commits
        return render(request, "recording_refused.html", refused.status_code, reason=refused.reason)
    return render(request, "recording_player.html", agent=agent, recording=recording)


@router.get(RECORDINGS + "/{recording_id}/data")
def recording_data(
    request: Request,
    supervisor: SupervisorSession,
    _in_scope: ScopedAgentOfAnyState,
    db: DbSession,
    session_id: str,
    recording_id: str,
) -> Response:
    try:
        chunks = recording_playback.play(
            db, supervisor, session_id, recording_id, client_address(request), _files(request)
        )
    except PlaybackRefused as refused:
        return JSONResponse({"reason": refused.reason, "message": refused.message}, refused.status_code)
    return StreamingResponse(chunks, media_type="application/octet-stream", headers={"Cache-Control": "no-store"})
