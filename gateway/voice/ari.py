"""Asterisk ARI adapter: the callback leg is a channel originated into our Stasis application and held in a
mixing bridge of its own, where the contact center's logic puts customer calls.

REST (Asterisk "Channels" and "Bridges" REST APIs): ``POST /ari/bridges/{id}?type=mixing`` (create or keep),
``POST /ari/channels/{dialId}?endpoint=…&app=…`` (originate with our id), ``POST /ari/bridges/{id}/addChannel``,
``POST /ari/channels/{id}/variable``, ``DELETE /ari/channels/{id}``, ``DELETE /ari/bridges/{id}``,
``GET /ari/channels``; for supervisors (`gateway/voice/listening.py`) ``POST /channels/{id}/snoop`` with
``spy``/``whisper``/``app``/``appArgs``/``snoopId``, ``POST /channels/{id}/play`` (the agent's beep). Events
arrive on the websocket ``/ari/events?app=…&api_key=user:pass``; after every (re)connect the adapter reports
``Resynced`` so the reconciler compares legs with ``GET /ari/channels``.
"""

import json
import logging
import threading
from typing import Any
from urllib.parse import quote

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from gateway.voice.errors import PlatformUnavailable
from gateway.voice.listening import ListenMode, ListenOrder, snoop_channel, supervisor_channel
from gateway.voice.platform import (
    DIAL_PREFIX,
    CustomerCallEvent,
    CustomerCallKind,
    EventSink,
    LegEvent,
    LegEventKind,
    LegOrder,
    PlatformEvent,
    Resynced,
    leg_of_dial,
)
from gateway.voice.settings import AriSettings

log = logging.getLogger(__name__)
BRIDGE_PREFIX = "sohogw.bridge-"
MONITOR_BRIDGE_PREFIX = "sohogw.listen-"
REST_TIMEOUT = 5.0


def bridge_of(leg_id: str) -> str:
    return f"{BRIDGE_PREFIX}{leg_id}"


class AriPlatform:
    """`ack_digit`: put an answered callback into its bridge only after the agent pressed this key
    (``ChannelDtmfReceived``); until then it is reported ANSWERED, and other keys are reported as KEY.
    `help_code`: the keys that, pressed on a connected callback, are reported as HELP."""

    def __init__(self, settings: AriSettings, ack_digit: str | None = None, help_code: str | None = None) -> None:
        self._settings = settings
        self._ack_digit = ack_digit
        self._help_code = help_code
        self._keys: dict[str, str] = {}
        """The last keys pressed on each connected callback, to find the help code in them."""
        self._listening_bridge: dict[str, str] = {}
        """A supervisor's listening channel → the bridge it joins when it answers."""
        self._awaiting_key: set[str] = set()
        """Answered dials whose acknowledgement key has not come yet (only touched by the event thread)."""
        password = settings.password.get_secret_value()
        self._http = httpx.Client(
            base_url=settings.url.rstrip("/") + "/ari", auth=(settings.username, password), timeout=REST_TIMEOUT
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: ClientConnection | None = None
        self.connects = 0
        """How many times the event websocket was (re)opened; tests and metrics read it."""

    def _call(self, method: str, path: str, params: dict[str, str] | None = None, missing_ok: bool = False) -> Any:
        try:
            with self._lock:
                answer = self._http.request(method, path, params=params)
        except httpx.HTTPError as error:
            raise PlatformUnavailable(f"Asterisk ARI at {self._settings.url} did not answer ({error!r})") from None
        if answer.status_code == 404 and missing_ok:
            return None
        if not answer.is_success:
            raise PlatformUnavailable(f"Asterisk ARI refused {method} {path}: HTTP {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def originate_callback(self, leg: LegOrder) -> None:
        settings = self._settings
        self._call("POST", f"/bridges/{bridge_of(leg.leg_id)}", {"type": "mixing", "name": f"agent {leg.login}"})
        params = {
            "endpoint": settings.endpoint.format(number=leg.e164),
            "app": settings.application,
            "appArgs": f"callback,{leg.leg_id}",
            "timeout": str(settings.ring_seconds),
        }
        if settings.caller_id:
            params["callerId"] = settings.caller_id
        self._call("POST", f"/channels/{leg.dial_id}", params)

    def hang_up(self, leg: LegOrder) -> None:
        self._call("DELETE", f"/channels/{leg.dial_id}", {"reason": "normal"}, missing_ok=True)
        self._call("DELETE", f"/bridges/{bridge_of(leg.leg_id)}", missing_ok=True)

    def set_ready(self, leg: LegOrder, ready: bool) -> None:
        """ARI has no agent state; the dialplan or queue logic reads the channel variable SOHOGW_READY."""
        self._call("POST", f"/channels/{leg.dial_id}/variable", {"variable": "SOHOGW_READY", "value": str(int(ready))})

    def start_listening(self, order: ListenOrder) -> None:
        """Listen / whisper: a snoop channel on the agent's leg (``spy=both``; ``whisper=out`` for a whisper, which
        only the agent hears) in a mixing bridge of its own; barge: no snoop, the leg's own bridge. Then call the
        supervisor; their channel joins that bridge when it answers (StasisStart). The agent hears a beep first when
        policy says to tell them."""
        if order.tell_agent:
            self._call("POST", f"/channels/{order.agent_dial_id}/play", {"media": "sound:beep"})
        bridge = (
            bridge_of(order.leg_id) if order.mode is ListenMode.BARGE else f"{MONITOR_BRIDGE_PREFIX}{order.monitor_id}"
        )
        if order.mode is not ListenMode.BARGE:
            self._call("POST", f"/bridges/{bridge}", {"type": "mixing", "name": f"listen {order.monitor_id}"})
            snoop = {
                "spy": "both",
                "whisper": "out" if order.mode is ListenMode.WHISPER else "none",
                "app": self._settings.application,
                "appArgs": f"listen,{order.monitor_id}",
                "snoopId": order.snoop_channel,
            }
            self._call("POST", f"/channels/{order.agent_dial_id}/snoop", snoop)
            self._call("POST", f"/bridges/{bridge}/addChannel", {"channel": order.snoop_channel})
        self._listening_bridge[order.supervisor_channel] = bridge
        params = {
            "endpoint": self._settings.endpoint.format(number=order.supervisor_e164),
            "app": self._settings.application,
            "appArgs": f"listen,{order.monitor_id}",
            "timeout": str(self._settings.ring_seconds),
        }
        if self._settings.caller_id:
            params["callerId"] = self._settings.caller_id
        self._call("POST", f"/channels/{order.supervisor_channel}", params)

    def stop_listening(self, monitor_id: str, mode: ListenMode) -> None:
        self._listening_bridge.pop(supervisor_channel(monitor_id), None)
        self._call("DELETE", f"/channels/{supervisor_channel(monitor_id)}", missing_ok=True)
        if mode is not ListenMode.BARGE:
            self._call("DELETE", f"/channels/{snoop_channel(monitor_id)}", missing_ok=True)
            self._call("DELETE", f"/bridges/{MONITOR_BRIDGE_PREFIX}{monitor_id}", missing_ok=True)

    def live_dials(self) -> set[str] | None:
        channels = self._call("GET", "/channels")
        return {channel["id"] for channel in channels if str(channel.get("id", "")).startswith(DIAL_PREFIX)}

    def start(self, sink: EventSink) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name="ari-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        connection = self._connection
        if connection is not None:
            connection.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http.close()

    def _events_url(self) -> str:
        settings = self._settings
        base = settings.url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        key = quote(f"{settings.username}:{settings.password.get_secret_value()}", safe=":")
        return f"{base}/ari/events?app={quote(settings.application)}&api_key={key}"

    def _run(self, sink: EventSink) -> None:
        """Hold the event websocket open; on loss wait (0.25 s doubling up to the maximum) and reconnect."""
        delay = 0.25
        while not self._stop.is_set():
            try:
                with connect(self._events_url(), open_timeout=REST_TIMEOUT) as connection:
                    self._connection = connection
                    self.connects += 1
                    delay = 0.25
                    self._deliver(sink, Resynced())
                    for message in connection:
                        for event in self._translate_safely(message):
                            self._deliver(sink, event)
            except (OSError, WebSocketException, TimeoutError) as error:
                if not self._stop.is_set():
                    log.warning("ARI event websocket lost (%r); reconnecting in %.2f s", error, delay)
            finally:
                self._connection = None
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._settings.reconnect_max_seconds)

    @staticmethod
    def _deliver(sink: EventSink, event: PlatformEvent) -> None:
        try:
            sink(event)
        except Exception:  # one bad event must not stop the stream; the reconciler's timer is the safety net
            log.exception("voice event %r could not be applied", event)

    def _translate_safely(self, message: str | bytes) -> list[PlatformEvent]:
        try:
            return self._translate(json.loads(message))
        except (ValueError, PlatformUnavailable) as error:
            log.warning("ARI event not handled: %s", error)
            return []

    def _bridge(self, channel_id: str) -> LegEvent:
        """Put the answered (and, if asked, acknowledged) callback into its leg's bridge: now it is connected."""
        leg_id = leg_of_dial(channel_id)
        assert leg_id is not None
        self._call("POST", f"/bridges/{bridge_of(leg_id)}/addChannel", {"channel": channel_id})
        return LegEvent(channel_id, LegEventKind.CONNECTED)

    def _translate(self, message: dict[str, Any]) -> list[PlatformEvent]:
        kind = message.get("type")
        channel = message.get("channel") or {}
        channel_id = str(channel.get("id", ""))
        ours = leg_of_dial(channel_id) is not None
        if kind == "ChannelStateChange" and ours and channel.get("state") == "Ringing":
            return [LegEvent(channel_id, LegEventKind.RINGING)]
        if kind == "StasisStart" and ours and self._ack_digit is not None:
            self._awaiting_key.add(channel_id)
            return [LegEvent(channel_id, LegEventKind.ANSWERED)]
        if kind == "StasisStart" and ours:
            return [self._bridge(channel_id)]
        if kind == "ChannelDtmfReceived" and channel_id in self._awaiting_key:
            digit = str(message.get("digit", ""))
            if digit != self._ack_digit:
                return [LegEvent(channel_id, LegEventKind.KEY, digit=digit)]
            self._awaiting_key.discard(channel_id)
            return [self._bridge(channel_id)]
        if kind == "StasisStart" and channel_id in self._listening_bridge:
            self._call("POST", f"/bridges/{self._listening_bridge[channel_id]}/addChannel", {"channel": channel_id})
            return []
        if kind == "ChannelDtmfReceived" and ours and self._help_code is not None:
            keys = (self._keys.get(channel_id, "") + str(message.get("digit", "")))[-len(self._help_code) :]
            self._keys[channel_id] = "" if keys == self._help_code else keys
            return [LegEvent(channel_id, LegEventKind.HELP)] if keys == self._help_code else []
        if kind == "ChannelDestroyed" and ours:
            self._awaiting_key.discard(channel_id)
            self._keys.pop(channel_id, None)
            return [LegEvent(channel_id, LegEventKind.ENDED, message.get("cause"))]
        bridge_id = str((message.get("bridge") or {}).get("id", ""))
        if kind in ("ChannelEnteredBridge", "ChannelLeftBridge") and bridge_id.startswith(BRIDGE_PREFIX) and not ours:
            call = CustomerCallKind.ANSWERED if kind == "ChannelEnteredBridge" else CustomerCallKind.ENDED
            caller = (channel.get("caller") or {}).get("number") or None
            return [CustomerCallEvent(bridge_id.removeprefix(BRIDGE_PREFIX), call, caller)]
        return []
