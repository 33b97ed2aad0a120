"""A small pool of bound service-account connections, shared by lookups and group changes.

ldap3's synchronous connections are not safe to share between threads, so each caller borrows one for the
duration of its work. A connection that dies (server restarted, idle timeout) is dropped and the work is tried once
more on a fresh connection, which may land on another server.
"""

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from ldap3 import Connection
from ldap3.core.exceptions import LDAPCommunicationError

from gateway.directory import errors
from gateway.directory.entries import change_membership
from gateway.directory.servers import ServerList

T = TypeVar("T")


class ServiceConnections:
    """At most `size` bound connections as the service account, opened on first need."""

    def __init__(self, servers: ServerList, bind_dn: str, password: str, size: int, wait_seconds: float) -> None:
        self._servers = servers
        self._bind_dn = bind_dn
        self._password = password
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._wait_seconds = wait_seconds

    def _bound(self) -> Connection:
        conn = self._servers.open(self._bind_dn, self._password)
        if not conn.bind():
            message = conn.result.get("message", "")
            conn.unbind()
            raise errors.DirectoryMisconfigured(
                f"service account bind refused: check bind_dn/bind_password ({message})"
            )
        return conn

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a borrowed connection; retried once on a new connection if the old one died."""
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise errors.DirectoryUnavailable("all directory service connections are busy")
        try:
            for _ in range(2):
                try:
                    conn = self._idle.get_nowait()
                except queue.Empty:
                    conn = self._bound()
                try:
                    result = work(conn)
                except LDAPCommunicationError:
                    self._servers.report_failure(conn)
                    conn.unbind()
                    continue
                self._idle.put(conn)
                return result
            raise errors.DirectoryUnavailable("directory connection lost twice in a row")
        finally:
            self._slots.release()

    def close(self) -> None:
        """Unbind every idle connection."""
        while True:
            try:
                self._idle.get_nowait().unbind()
            except queue.Empty:
                return


class PooledDirectory:
    """What the ldap3 directories (AD and OpenLDAP) do alike through their service-account pool: group
    membership changes (HR's hand-off) and closing. Subclasses set ``self._pool``."""

    _pool: ServiceConnections

    def add_to_group(self, user_dn: str, group_dn: str) -> None:
        self._pool.run(lambda conn: change_membership(conn, user_dn, group_dn, add=True))

    def remove_from_group(self, user_dn: str, group_dn: str) -> None:
        self._pool.run(lambda conn: change_membership(conn, user_dn, group_dn, add=False))

    def close(self) -> None:
        self._pool.close()
