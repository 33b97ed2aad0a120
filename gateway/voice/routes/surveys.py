"""The SMS gateway's inbound webhook: customers' replies to the satisfaction survey (docs/voice.md).

No session: the HMAC signature (``voice.survey.inbound_secret``, signed as the CTI webhook) is the check. Anyone can
cause a refusal, so refusals are audited folded (``gateway/audit/folding.py``), written in their own transaction so
the request's rollback cannot take them along.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from gateway.audit.folding import RefusalKey, write_folded
from gateway.deps import ClockDep, DbSession
from gateway.errors import GatewayError
from gateway.sessions.client_cert import client_address
from gateway.voice.settings import VoiceSettings
from gateway.voice.surveys import record_reply
from gateway.voice.webhook import verify_signed

router = APIRouter(prefix="/voice", tags=["voice"])
INBOUND = "/sms/inbound"


def _voice_settings(request: Request) -> VoiceSettings:
    return request.app.state.settings.voice  # type: ignore[no-any-return]


async def _raw_body(request: Request) -> bytes:
    """The body exactly as sent: the signature covers these bytes."""
    return await request.body()


def _audit_refusal(request: Request, refused: GatewayError) -> None:
    now = request.app.state.clock()
    key = RefusalKey("voice.survey.inbound", client_address(request), refused.reason)
    row = request.app.state.folded_refusals.refusal(key, request.url.path[:255], {"problem": refused.message}, now)
    if row is not None:
        write_folded(request.app.state.engine, row, now)


@router.post(INBOUND)
def inbound_text(
    request: Request,
    body: Annotated[bytes, Depends(_raw_body)],
    db: DbSession,
    clock: ClockDep,
    settings: Annotated[VoiceSettings, Depends(_voice_settings)],
) -> dict[str, str]:
    survey = settings.survey
    try:
        message = verify_signed(
            request.headers,
            body,
            survey.inbound_secret.get_secret_value(),
            survey.window_seconds,
            clock(),
            configured_by="voice.survey.inbound_secret",
        )
        reply = record_reply(db, message, settings, clock())
    except GatewayError as refused:
        _audit_refusal(request, refused)
        raise
    return {"kind": reply.kind.value}
