"""ARI STAND-IN: a small server on 127.0.0.1 that speaks the shapes of Asterisk's REST interface and event
websocket, because no PBX can be installed on this machine. It is not Asterisk: it knows only what the voice
adapter uses (channels originate with id / list / hangup / variable, bridges create / addChannel / destroy,
``/ari/events``) and plays the events in the order Asterisk documents for a channel originated into a Stasis
application: ChannelStateChange(Ringing) → [answer] ChannelStateChange(Up) → StasisStart → ChannelEnteredBridge
… ChannelHangupRequest → ChannelLeftBridge → StasisEnd → ChannelDestroyed(cause). Failures are scripted per number:
busy (cause 17), no answer (19), rejected (21); tests can also hang up a live channel, lose the websocket,
destroy a channel while no websocket listens (events lost, to be found by a resync), or press a key on an answered
channel (ChannelDtmfReceived).
"""

import asyncio
import base64
import itertools
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

CAUSE_TEXT = {16: "Normal Clearing", 17: "User busy", 19: "No answer", 21: "Call Rejected"}
FAILURE_CAUSE = {"busy": 17, "no_answer": 19, "rejected": 21}
DIRECTIONS = ("none", "both", "out", "in")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class AriStandIn:
    def __init__(self, username: str, password: str, application: str, *, ring_seconds: float = 0.05) -> None:
        self.username, self.password, self.application = username, password, application
        self.ring_seconds = ring_seconds
        self.behaviour: dict[str, str] = {}
        """number → "answer" (default), "busy", "no_answer" or "rejected"."""
        self.channels: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, dict[str, Any]] = {}
        self.in_stasis: set[str] = set()
        self.variables: dict[tuple[str, str], str] = {}
        self.originated: list[str] = []
        self.snoops: list[dict[str, str]] = []
        """Every ``POST /ari/channels/{channelId}/snoop``: the spied channel and the query as sent."""
        self.played: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.refuse_websockets = False
        self.websocket_connects = 0
        self._queues: list[asyncio.Queue[dict[str, Any] | None]] = []
        self._serial = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app = self._build()

    # ---- what tests call from their own thread ----
    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        assert self.loop is not None, "the stand-in has not served a request yet"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def remote_hang_up(self, channel_id: str, cause: int = 16) -> None:
        """The agent's phone hangs up (or the mobile network drops the call) mid-shift."""
        self.run(self._destroy(channel_id, cause))

    def lose_websockets(self) -> None:
        """Close every event websocket, as a restart of Asterisk's HTTP server or a network cut would."""
        self.run(self._close_websockets())

    def destroy_unseen(self, channel_id: str) -> None:
        """Destroy a channel without telling anyone (its events are lost while no websocket listens)."""
        self.run(self._destroy(channel_id, 16, announce=False))

    def press(self, channel_id: str, digit: str, duration_ms: int = 120) -> None:
        """The person (or nobody, for a voicemail) presses a key on the answered phone: ChannelDtmfReceived, as
        Asterisk's ARI documents it (``digit`` 0-9, A-E, # or *; ``duration_ms``; the channel)."""
        self.run(self._emit("ChannelDtmfReceived", self.channels[channel_id], digit=digit, duration_ms=duration_ms))

    def customer_call(self, bridge_id: str, caller: str) -> str:
        return str(self.run(self._customer_enters(bridge_id, caller)))

    def customer_hangs_up(self, channel_id: str) -> None:
        self.run(self._destroy(channel_id, 16))

    # ---- the server ----
    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def basic_auth(request: Request, call_next: Any) -> Response:
            self.loop = asyncio.get_running_loop()
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse({"message": "Authentication required"}, status_code=401)
            return await call_next(request)  # type: ignore[no-any-return]

        @app.get("/ari/channels")
        async def list_channels() -> list[dict[str, Any]]:
            return list(self.channels.values())

        @app.post("/ari/channels/{channel_id}")
        async def originate(channel_id: str, endpoint: str, app: str, appArgs: str = "", timeout: int = 30) -> Any:
            if channel_id in self.channels:
                return JSONResponse({"message": "Channel with given unique ID already exists"}, status_code=409)
            if app != self.application:
                return JSONResponse({"message": "Application not registered"}, status_code=400)
            number = endpoint.split("/", 1)[-1].split("@", 1)[0]
            channel = self._channel(channel_id, number)
            self.channels[channel_id] = channel
            self.originated.append(channel_id)
            asyncio.get_running_loop().create_task(self._dial(channel_id, number, appArgs.split(",")))
            return channel

        @app.delete("/ari/channels/{channel_id}")
        async def hang_up(channel_id: str) -> Response:
            if channel_id not in self.channels:
                return JSONResponse({"message": "Channel not found"}, status_code=404)
            self.deleted.append(channel_id)
            await self._destroy(channel_id, 16)
            return Response(status_code=204)

        @app.post("/ari/channels/{channel_id}/snoop")
        async def snoop(
            channel_id: str, app: str, spy: str = "none", whisper: str = "none", appArgs: str = "", snoopId: str = ""
        ) -> Any:
            # Asterisk: spy and whisper each none|both|out|in; app required; the snoop channel enters Stasis at once.
            if channel_id not in self.channels:
                return JSONResponse({"message": "Channel not found"}, status_code=404)
            if spy not in DIRECTIONS or whisper not in DIRECTIONS or (spy == "none" and whisper == "none"):
                return JSONResponse({"message": "Invalid direction specified"}, status_code=400)
            if app != self.application:
                return JSONResponse({"message": "Application not registered"}, status_code=400)
            snoop_id = snoopId or f"snoop-{next(self._serial)}"
            self.snoops.append(
                {
                    "channel": channel_id,
                    "spy": spy,
                    "whisper": whisper,
                    "app": app,
                    "appArgs": appArgs,
                    "snoopId": snoop_id,
                }
            )
            snooping = self._channel(snoop_id, "")
            snooping.update(state="Up", name=f"Snoop/{channel_id}-{next(self._serial):08x}")
            self.channels[snoop_id] = snooping
            self.in_stasis.add(snoop_id)
            await self._emit("StasisStart", snooping, args=appArgs.split(","))
            return snooping

        @app.post("/ari/channels/{channel_id}/play")
        async def play(channel_id: str, media: str) -> Any:
            if channel_id not in self.channels:
                return JSONResponse({"message": "Channel not found"}, status_code=404)
            self.played.append((channel_id, media))
            return {
                "id": f"playback-{next(self._serial)}",
                "media_uri": media,
                "target_uri": f"channel:{channel_id}",
                "language": "en",
                "state": "queued",
            }

        @app.post("/ari/channels/{channel_id}/variable")
        async def set_variable(channel_id: str, variable: str, value: str = "") -> Response:
            if channel_id not in self.channels:
                return JSONResponse({"message": "Channel not found"}, status_code=404)
            self.variables[(channel_id, variable)] = value
            return Response(status_code=204)

        @app.post("/ari/bridges/{bridge_id}")
        async def create_bridge(bridge_id: str, type: str = "mixing", name: str = "") -> dict[str, Any]:
            bridge = self.bridges.setdefault(
                bridge_id,
                {
                    "id": bridge_id,
                    "technology": "simple_bridge",
                    "bridge_type": type,
                    "bridge_class": "stasis",
                    "creator": "Stasis",
                    "name": name,
                    "channels": [],
                    "creationtime": _now(),
                    "video_mode": "none",
                },
            )
            return bridge

        @app.post("/ari/bridges/{bridge_id}/addChannel")
        async def add_channel(bridge_id: str, channel: str) -> Response:
            if bridge_id not in self.bridges:
                return JSONResponse({"message": "Bridge not found"}, status_code=404)
            if channel not in self.in_stasis:
                return JSONResponse({"message": "Channel not in Stasis application"}, status_code=422)
            self.bridges[bridge_id]["channels"].append(channel)
            await self._emit("ChannelEnteredBridge", self.channels[channel], bridge=self.bridges[bridge_id])
            return Response(status_code=204)

        @app.delete("/ari/bridges/{bridge_id}")
        async def destroy_bridge(bridge_id: str) -> Response:
            bridge = self.bridges.pop(bridge_id, None)
            if bridge is None:
                return JSONResponse({"message": "Bridge not found"}, status_code=404)
            await self._broadcast({"type": "BridgeDestroyed", "bridge": bridge})
            return Response(status_code=204)

        @app.websocket("/ari/events")
        async def events(websocket: WebSocket) -> None:
            self.loop = asyncio.get_running_loop()
            key = f"{self.username}:{self.password}"
            params = websocket.query_params
            if self.refuse_websockets or params.get("api_key") != key or params.get("app") != self.application:
                await websocket.close(code=1008)
                return
            await websocket.accept()
            self.websocket_connects += 1
            queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            self._queues.append(queue)
            try:
                while (event := await queue.get()) is not None:
                    await websocket.send_json(event)
                await websocket.close()
            except WebSocketDisconnect:
                pass  # the adapter went away; it reconnects on its own
            finally:
                self._queues.remove(queue)

        return app

    def _channel(self, channel_id: str, number: str) -> dict[str, Any]:
        return {
            "id": channel_id,
            "name": f"PJSIP/trunk-{next(self._serial):08x}",
            "state": "Down",
            "caller": {"name": "", "number": ""},
            "connected": {"name": "", "number": number},
            "accountcode": "",
            "dialplan": {"context": "sohogw-callback", "exten": "s", "priority": 1, "app_name": "", "app_data": ""},
            "creationtime": _now(),
            "language": "en",
        }

    async def _broadcast(self, event: dict[str, Any]) -> None:
        event = {**event, "timestamp": _now(), "application": self.application, "asterisk_id": "02:00:00:00:00:01"}
        for queue in list(self._queues):
            queue.put_nowait(event)

    async def _emit(self, kind: str, channel: dict[str, Any], **extra: Any) -> None:
        await self._broadcast({"type": kind, "channel": dict(channel), **extra})

    async def _dial(self, channel_id: str, number: str, args: list[str]) -> None:
        await asyncio.sleep(self.ring_seconds)
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        channel["state"] = "Ringing"
        await self._emit("ChannelStateChange", channel)
        await asyncio.sleep(self.ring_seconds)
        if channel_id not in self.channels:
            return
        behaviour = self.behaviour.get(number, "answer")
        if behaviour in FAILURE_CAUSE:
            await self._destroy(channel_id, FAILURE_CAUSE[behaviour])
            return
        channel["state"] = "Up"
        await self._emit("ChannelStateChange", channel)
        self.in_stasis.add(channel_id)
        await self._emit("StasisStart", channel, args=args)

    async def _customer_enters(self, bridge_id: str, caller: str) -> str:
        channel_id = f"{next(self._serial)}.customer"
        channel = self._channel(channel_id, "")
        channel.update(state="Up", caller={"name": "", "number": caller})
        self.channels[channel_id] = channel
        self.in_stasis.add(channel_id)
        self.bridges[bridge_id]["channels"].append(channel_id)
        await self._emit("ChannelEnteredBridge", channel, bridge=self.bridges[bridge_id])
        return channel_id

    async def _destroy(self, channel_id: str, cause: int, announce: bool = True) -> None:
        channel = self.channels.pop(channel_id, None)
        if channel is None or not announce:
            self.in_stasis.discard(channel_id)
            return
        await self._emit("ChannelHangupRequest", channel, cause=cause, soft=False)
        for bridge in self.bridges.values():
            if channel_id in bridge["channels"]:
                bridge["channels"].remove(channel_id)
                await self._emit("ChannelLeftBridge", channel, bridge=bridge)
        if channel_id in self.in_stasis:
            self.in_stasis.discard(channel_id)
            await self._emit("StasisEnd", channel)
        channel["state"] = "Down"
        await self._emit("ChannelDestroyed", channel, cause=cause, cause_txt=CAUSE_TEXT.get(cause, "Unknown"))

    async def _close_websockets(self) -> None:
        for queue in list(self._queues):
            queue.put_nowait(None)
