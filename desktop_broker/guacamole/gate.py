"""The broker's gate in front of guacamole-lite: every launch is decided here, once.

guacamole-lite's token has no MAC and its own callback cannot stop a connection to guacd, so the
token is only transport. What decides is the launch record kept here: minted with the token,
redeemed at most once, before its expiry, and only with the exact token it was minted with
(SHA-256 of the token string, so a flipped bit in the IV or ciphertext is refused). server.js
redeems over loopback (`POST /internal/launch/redeem`) before it hands the websocket to
guacamole-lite; the gateway serves that route by calling `LaunchGate.redeem`.
"""

import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from desktop_broker.guacamole.parameters import seat_connection, supervisor_view
from desktop_broker.guacamole.token import GuacamoleConnection, mint_token, token_digest


class LaunchMode(StrEnum):
    INTERACTIVE = "interactive"
    """The home agent drives the seat."""
    VIEW = "view"
    """A supervisor watches the seat: a read-only join, no input reaches guacd."""


@dataclass(frozen=True, slots=True)
class Launch:
    """One permission to open one websocket to one seat, for one person."""

    launch_id: str
    user: str
    seat: str
    mode: LaunchMode
    token_sha256: str
    expires_at: datetime

    def redemption(self) -> dict[str, str]:
        """The body server.js receives on a successful redemption (the contract it checks)."""
        return {"launch_id": self.launch_id, "user": self.user, "seat": self.seat, "mode": self.mode.value}


@dataclass(frozen=True, slots=True)
class IssuedLaunch:
    """What the portal hands the browser: the token for guacamole-lite's websocket URL."""

    launch_id: str
    token: str
    expires_at: datetime


class LaunchRefused(Exception):
    """A redemption the gate refuses; `reason` is safe to log and to return to server.js."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LaunchStore(Protocol):
    """Where launches wait for their single redemption; the gateway backs it with its database."""

    def add(self, launch: Launch, now: datetime) -> None: ...

    def take(self, launch_id: str) -> Launch | None:
        """Remove and return the launch atomically, so two redemptions cannot both win."""
        ...


class MemoryLaunchStore:
    """An in-process store for one broker process (the embedded default and the tests)."""

    def __init__(self) -> None:
        self._launches: dict[str, Launch] = {}
        self._lock = threading.Lock()

    def add(self, launch: Launch, now: datetime) -> None:
        with self._lock:
            expired = [key for key, kept in self._launches.items() if kept.expires_at <= now]
            for key in expired:
                del self._launches[key]
            self._launches[launch.launch_id] = launch

    def take(self, launch_id: str) -> Launch | None:
        with self._lock:
            return self._launches.pop(launch_id, None)


class LaunchGate:
    """Mints launch tokens and redeems each one once; the only authority over guacamole-lite."""

    def __init__(
        self,
        key: bytes,
        store: LaunchStore,
        now: Callable[[], datetime],
        lifetime: timedelta = timedelta(seconds=30),
    ) -> None:
        self._key = key
        self._store = store
        self._now = now
        self._lifetime = lifetime

    def issue_seat_launch(self, *, user: str, seat: str, protocol: str, parameters: Mapping[str, str]) -> IssuedLaunch:
        """A home agent's interactive launch of `seat`, with policy's compiled parameters."""
        return self._issue(user, seat, LaunchMode.INTERACTIVE, seat_connection(protocol, parameters))

    def issue_supervisor_view(self, *, supervisor: str, seat: str, protocol: str, connection_id: str) -> IssuedLaunch:
        """A supervisor's read-only join of the seat's live guacd connection `connection_id`."""
        return self._issue(supervisor, seat, LaunchMode.VIEW, supervisor_view(protocol, connection_id))

    def redeem(self, launch_id: str, token_sha256: str) -> Launch:
        """Spend the launch: unknown, already used, expired or altered tokens are refused.

        The launch is removed before it is checked, so a refused attempt also burns it: a
        tampering client cannot retry variations against the same launch.
        """
        launch = self._store.take(launch_id)
        if launch is None:
            raise LaunchRefused("unknown or already used launch")
        if self._now() >= launch.expires_at:
            raise LaunchRefused("launch expired; start the seat again from the portal")
        if not hmac.compare_digest(launch.token_sha256, token_sha256):
            raise LaunchRefused("token does not match the one issued for this launch")
        return launch

    def _issue(self, user: str, seat: str, mode: LaunchMode, connection: GuacamoleConnection) -> IssuedLaunch:
        launch_id = secrets.token_urlsafe(18)
        token = mint_token(self._key, connection, launch_id)
        now = self._now()
        launch = Launch(launch_id, user, seat, mode, token_digest(token), now + self._lifetime)
        self._store.add(launch, now)
        return IssuedLaunch(launch_id=launch_id, token=token, expires_at=launch.expires_at)
