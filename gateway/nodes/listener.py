"""Nudges from the other nodes: one thread per node ``LISTEN``s on its own psycopg connection and hands every
notification another process committed to this node's listeners (the worker runner's among them).

A dropped connection is reported (logged, counted, ``status``) and reopened with a back-off; nudges committed while
it was down are lost, which the workers' interval passes repair. The thread never does the work itself.
"""

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from prometheus_client import Counter

from gateway.clock import Clock, utcnow
from gateway.events import NOTIFY_CHANNEL, ORIGIN
from gateway.workers.runner import WORKER_REGISTRY

log = logging.getLogger(__name__)
DROPS = Counter(
    "sohogw_nudge_listener_drops", "Times the cross-node nudge connection dropped", registry=WORKER_REGISTRY
)
RECEIVED = Counter("sohogw_nudges_received", "Nudges received from other nodes", registry=WORKER_REGISTRY)
MAX_BACKOFF_SECONDS = 5.0
POLL_SECONDS = 0.5
"""How long one wait for notifications lasts, so a stop is noticed within it."""

Deliver = Callable[[str, Any], None]


@dataclass
class ListenerStatus:
    connected: bool = False
    connected_since: datetime | None = None
    last_error: str | None = None
    drops: int = 0


def psycopg_url(sqlalchemy_url: str) -> str:
    """The libpq URL of an SQLAlchemy ``postgresql+psycopg://`` URL."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


class NudgeListener:
    """``start``, ``status``, ``stop``. ``deliver`` is called in this thread for each foreign nudge; it must only wake
    workers (``gateway.events.publish`` reaches the runner's subscriptions, or pass ``WorkerRunner.nudge``)."""

    def __init__(self, database_url: str, deliver: Deliver, clock: Clock = utcnow, origin: str = ORIGIN) -> None:
        self.url, self.deliver, self.clock, self.origin = psycopg_url(database_url), deliver, clock, origin
        self.status = ListenerStatus()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nudge listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.status.connected, self.status.connected_since = True, self.clock()
                    backoff = 0.2
                    while not self._stopping.is_set():
                        for note in connection.notifies(timeout=POLL_SECONDS):
                            self._hand_on(note.payload)
            except psycopg.Error as error:
                self.status.connected, self.status.last_error = False, f"{type(error).__name__}: {error}"
                self.status.drops += 1
                DROPS.inc()
                log.error("cross-node nudges stopped (%s); reconnecting in %.1f s", error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.status.connected = False

    def _hand_on(self, raw: str) -> None:
        try:
            note = json.loads(raw)
            topic, payload, origin = note["topic"], note["payload"], note["origin"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed nudge on %s", NOTIFY_CHANNEL)
            return
        if origin == self.origin:
            return  # this process delivered it itself after its commit
        RECEIVED.inc()
        self.deliver(topic, payload)
