"""Apps the HTTP tests serve on loopback: the voice router as the gateway mounts it, and two receivers that play
an SMS gateway and a CTI platform (each keeps what it was sent)."""

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.clock import Clock
from gateway.notify.sms import SmsSettings
from gateway.settings import load_settings
from gateway.voice.settings import VoiceSettings
from gateway.voice.webhook import verify


def voice_app(engine: Engine, voice: VoiceSettings, sms: SmsSettings, clock: Clock) -> FastAPI:
    """The gateway's own app (voice routes and error handling included) with these voice and SMS settings."""
    # The data directory is never written here: the engine is given and no CA or built-in account is used.
    settings = load_settings(data_dir=Path(tempfile.gettempdir()) / "sohogw-voice-unused", voice=voice, sms=sms)
    return create_app(settings, engine=engine, clock=clock, run_jobs=False)


class Receiver:
    """Keeps each posted body and its headers; answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()

        @self.app.post("/{path:path}")
        async def receive(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=self.status)

    def bodies(self) -> list[Any]:
        return [json.loads(body) for _headers, body in self.received]

    def verified(self, voice: VoiceSettings, now: datetime) -> list[dict[str, Any]]:
        """Each message checked as a CTI platform following docs/voice.md would check it."""
        return [verify(headers, body, voice.webhook, now) for headers, body in self.received]
