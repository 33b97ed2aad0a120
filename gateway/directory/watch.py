"""A subscription to directory changes: which entries changed, seconds after they did, with the poll as backstop.

The searches of a change feed (``change_feeds.py``) never end, so they get connections of their own, bound as the
service account, read by one background thread. What arrives is handed to ``on_change`` as a set naming each
changed entry by DN and by stable id (``person_id``), one call per batch read. Deciding what a change means
(re-validating sessions) is the caller's business, not the directory's.

A subscription is **lost** when its connection closes or fails, when the server ends a watched search (AD answers
``unwillingToPerform`` to a search it will not watch), or when the server leaves a heartbeat — a rootDSE read sent
after ``heartbeat_seconds`` of silence — unanswered for ``answer_seconds``. It is then re-established, with a pause
that doubles from 1 s up to the heartbeat. Neither mechanism replays what was missed while lost, so after a
restoration ``on_change(None)`` says "anything may have changed". ``on_status`` hears each loss and each
restoration once: ``(False, why)``, then ``(True, how)``.
"""

import logging
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from ldap3 import Connection
from ldap3.core.exceptions import LDAPException

from gateway.directory import errors
from gateway.directory.change_feeds import ChangeFeed, Search
from gateway.directory.servers import ServerList
from gateway.directory.settings import DirectorySettings
from gateway.directory.watched_connection import SubscriptionLost, WatchedConnection

log = logging.getLogger(__name__)

Changed = Callable[[frozenset[str] | None], None]
StatusReport = Callable[[bool, str], None]
_READ_WAIT = 0.5  # seconds a quiet read waits before the loop checks stop, rewatch and heartbeats


class DirectoryWatch:
    """Background subscription: ``start()``, ``stop()``; ``rewatch()`` when the containers of interest may have
    grown (a session started). ``containers()`` is read at each (re)subscription, on ``rewatch`` and once per
    heartbeat interval; a feed that watches the whole base ignores it."""

    def __init__(
        self,
        servers: ServerList,
        service_account: tuple[str, str],
        feed: ChangeFeed,
        containers: Callable[[], frozenset[str]],
        on_change: Changed,
        on_status: StatusReport,
        heartbeat_seconds: float,
        answer_seconds: float,
    ) -> None:
        self._servers, self._account, self._feed = servers, service_account, feed
        self._containers, self._on_change, self._on_status = containers, on_change, on_status
        self._heartbeat, self._answer = heartbeat_seconds, answer_seconds
        self._stopping = threading.Event()
        self._rewatch = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False
        self.subscribed = threading.Event()
        """Set while every watched search is confirmed registered; for tests and health checks."""
        self.watching: frozenset[str] = frozenset()
        """The bases of the searches confirmed registered now."""

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="directory-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._rewatch.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def rewatch(self) -> None:
        self._rewatch.set()

    def _run(self) -> None:
        pause = 1.0
        while not self._stopping.is_set():
            try:
                self._subscribe_and_read()
            except Exception as problem:  # whatever breaks a subscription, the thread lives on to re-establish it
                if not isinstance(problem, SubscriptionLost | errors.DirectoryError | LDAPException | OSError):
                    log.exception("directory subscription failed unexpectedly")
                self.subscribed.clear()
                self.watching = frozenset()
                if not self._lost:
                    self._lost = True
                    self._report(False, str(problem))
                    pause = 1.0
                log.info("directory subscription down, next try in %g s: %s", pause, problem)
                self._stopping.wait(pause)
                pause = min(pause * 2, self._heartbeat)

    def _subscribe_and_read(self) -> None:
        """Register the feed's searches and read them until stopped or until the wanted searches change."""
        searches = self._feed.searches(self._read_containers(frozenset()))
        if not searches:
            self.watching = frozenset()
            self.subscribed.set()  # nothing to watch is fully watched
            self._restored("nothing to watch any more")
            self._rewatch.wait(self._heartbeat)
            self._rewatch.clear()
            return
        streams: list[WatchedConnection] = []
        try:
            for start in range(0, len(searches), self._feed.per_connection):
                chunk = searches[start : start + self._feed.per_connection]
                streams.append(WatchedConnection(self._bound(), chunk, self._feed))
            self._read(streams, searches)
        finally:
            for stream in streams:
                stream.close()

    def _restored(self, how: str) -> None:
        """After a loss: report the restoration and say that anything may have changed meanwhile."""
        if self._lost:
            self._lost = False
            self._report(True, how)
            self._deliver(None)

    def _bound(self) -> Connection:
        conn = self._servers.open(*self._account)
        try:
            if not conn.bind():
                raise errors.DirectoryMisconfigured(f"service account bind refused: {conn.result.get('message')}")
        except LDAPException as error:
            raise SubscriptionLost(f"bind failed: {error}") from None
        return conn

    def _read(self, streams: list[WatchedConnection], searches: list[Search]) -> None:
        checked_at = time.monotonic()
        while not self._stopping.is_set():
            ready = [s for s in streams if s.has_buffered()]
            if not ready:
                readable, _, _ = select.select([s.conn.socket for s in streams], [], [], _READ_WAIT)
                ready = [s for s in streams if s.conn.socket in readable]
            changed: set[str] = set()
            for stream in ready:
                for response in stream.read():
                    changed |= self._take(stream, response)
            if not self.subscribed.is_set() and all(stream.confirmed for stream in streams):
                self.watching = frozenset(base for base, _scope in searches)
                self.subscribed.set()
                self._restored(f"{len(searches)} search(es) registered again")
            if changed:
                self._deliver(frozenset(changed))
            for stream in streams:
                stream.beat(self._heartbeat, self._answer)
            if self._rewatch.is_set() or time.monotonic() - checked_at >= self._heartbeat:
                self._rewatch.clear()
                checked_at = time.monotonic()
                if self._feed.searches(self._read_containers(frozenset(b for b, _ in searches))) != searches:
                    self.subscribed.clear()
                    return

    def _take(self, stream: WatchedConnection, response: dict[str, Any]) -> set[str]:
        message_id = response["message_id"]
        if message_id in stream.watched:
            if response.get("type") == "searchResDone":
                raise SubscriptionLost(
                    f"the server ended a watched search: {response.get('description')} {response.get('message')}"
                )
            return self._feed.changed(response)
        stream.answered(response)
        return set()

    def _read_containers(self, current: frozenset[str]) -> frozenset[str]:
        try:
            return self._containers()
        except Exception:  # the database may be busy or down; keep watching what is watched
            log.exception("could not read the containers to watch; keeping the current ones")
            return current

    def _deliver(self, changed: frozenset[str] | None) -> None:
        try:
            self._on_change(changed)
        except Exception:  # the poll catches up with what the handler missed; the subscription must go on
            log.exception("handling directory changes failed")

    def _report(self, up: bool, detail: str) -> None:
        try:
            self._on_status(up, detail)
        except Exception:
            log.exception("reporting the directory subscription's state failed")


def watch_for(
    settings: DirectorySettings,
    feed: ChangeFeed,
    containers: Callable[[], frozenset[str]],
    on_change: Changed,
    on_status: StatusReport,
) -> DirectoryWatch | None:
    """The subscription the settings ask for (None when ``watch_changes`` is off), on servers of its own list: a
    server the logins found dead is still tried, since the watch reconnects on its own schedule."""
    if not settings.watch_changes:
        return None
    account = (settings.bind_dn, settings.bind_password.get_secret_value())
    heartbeat = settings.watch_heartbeat_seconds
    return DirectoryWatch(
        ServerList(settings), account, feed, containers, on_change, on_status, heartbeat, settings.receive_timeout
    )
