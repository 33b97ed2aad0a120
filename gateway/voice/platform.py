"""The one interface every contact-center platform adapter offers, and the events it feeds back.

The gateway decides who is called where and when; an adapter only carries that out (originate, hang up, tell the
platform the agent is ready) and reports what happened as ``LegEvent``/``CustomerCallEvent`` to the sink the
service gave it. Dial ids are chosen by the gateway (``sohogw-<leg id>-<nonce>``, see ``leg_of_dial``), so an
event names its leg.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

CAUSE_NORMAL, CAUSE_BUSY, CAUSE_NO_ANSWER, CAUSE_REJECTED = 16, 17, 19, 21
"""Q.850 cause codes Asterisk reports in ChannelDestroyed."""


@dataclass(frozen=True, slots=True)
class LegOrder:
    """One dial of a leg: which leg, under which dial id, to which number, for whom."""

    leg_id: str
    dial_id: str
    e164: str
    login: str
    session_id: str


class LegEventKind(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    """Something answered the dial, but no one has pressed the acknowledgement key yet (it may be voicemail)."""
    KEY = "key"
    """A key other than the acknowledgement digit was pressed on an answered, unacknowledged dial."""
    CONNECTED = "connected"
    HELP = "help"
    """The agent keyed the help code on a connected leg."""
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class LegEvent:
    dial_id: str
    kind: LegEventKind
    cause: int | None = None
    digit: str | None = None


class CustomerCallKind(StrEnum):
    OFFERED = "offered"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CustomerCallEvent:
    """A customer's call reached the agent's leg (``leg_id``); ``caller`` is the customer's number."""

    leg_id: str
    kind: CustomerCallKind
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class Resynced:
    """The adapter lost events (its event connection dropped and came back): compare legs with the platform now."""


PlatformEvent = LegEvent | CustomerCallEvent | Resynced
EventSink = Callable[[PlatformEvent], None]


class VoicePlatform(Protocol):
    def originate_callback(self, leg: LegOrder) -> None:
        """Start dialling ``leg.e164`` under ``leg.dial_id``; raise ``PlatformUnavailable`` if it cannot."""

    def hang_up(self, leg: LegOrder) -> None:
        """End the dial ``leg.dial_id`` if it exists; hanging up a gone leg is not an error."""

    def set_ready(self, leg: LegOrder, ready: bool) -> None:
        """Tell the platform the agent on this leg takes (or stops taking) customer calls."""

    def live_dials(self) -> set[str] | None:
        """The dial ids the platform still holds, or None when it cannot say (then no leg is judged by it)."""

    def start(self, sink: EventSink) -> None:
        """Begin delivering events to ``sink`` (from the adapter's own thread)."""

    def stop(self) -> None: ...


DIAL_PREFIX = "sohogw-"


def leg_of_dial(dial_id: str) -> str | None:
    """The leg id inside a dial id, or None for a channel that is not one of ours."""
    if not dial_id.startswith(DIAL_PREFIX):
        return None
    leg_id, _, nonce = dial_id.removeprefix(DIAL_PREFIX).partition("-")
    return leg_id if leg_id and nonce else None
