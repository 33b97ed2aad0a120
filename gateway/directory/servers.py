"""Opening connections to the first directory server that answers, remembering the ones that did not.

A server that failed (refused, timed out, bad certificate) is tried last for `dead_server_retry_after` seconds,
so a dead first DC costs one connect attempt, not one per login. Every socket gets TCP_NODELAY: ldap3 leaves
Nagle's algorithm on, and a bind then waits for a delayed ACK (measured on Samba LDAPS: 46 ms → 2.8 ms).
"""

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from ldap3 import NONE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPCommunicationError, LDAPExceptionError, LDAPStartTLSError

from gateway.directory import errors
from gateway.directory.settings import DirectorySettings

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = 49
"""LDAP's resultCode for a bind refused on the password (or on the account's state, which AD says in the message)."""


def _tls(settings: DirectorySettings) -> Tls:
    if settings.tls.insecure_skip_verify:
        return Tls(validate=ssl.CERT_NONE, version=ssl.PROTOCOL_TLS_CLIENT)
    return Tls(
        validate=ssl.CERT_REQUIRED,
        version=ssl.PROTOCOL_TLS_CLIENT,
        ca_certs_file=str(settings.tls.ca_file) if settings.tls.ca_file else None,
        valid_names=settings.tls.certificate_names or None,
    )


class ServerList:
    """The configured servers in order, with a memory of recent failures."""

    def __init__(self, settings: DirectorySettings, clock: Callable[[], float] = time.monotonic) -> None:
        tls = _tls(settings)
        self._settings = settings
        self._clock = clock
        self._servers = []
        for url in settings.servers:
            parts = urlsplit(url)
            use_ssl = parts.scheme.lower() == "ldaps"
            self._servers.append(
                Server(
                    parts.hostname or "",
                    port=parts.port or (636 if use_ssl else 389),
                    use_ssl=use_ssl,
                    tls=tls,
                    get_info=NONE,
                    connect_timeout=settings.connect_timeout,
                )
            )
        self._failed_at: dict[int, float] = {}
        self._lock = threading.Lock()

    def _in_order(self) -> list[Server]:
        """Healthy servers first (configured order), then recently failed ones, oldest failure first."""
        now = self._clock()
        retry_after = self._settings.dead_server_retry_after
        with self._lock:
            failed = {i: t for i, t in self._failed_at.items() if now - t < retry_after}
        healthy = [s for i, s in enumerate(self._servers) if i not in failed]
        return healthy + [self._servers[i] for i in sorted(failed, key=failed.__getitem__)]

    def _mark(self, server: Server, failed: bool) -> None:
        index = self._servers.index(server)
        with self._lock:
            if failed:
                self._failed_at[index] = self._clock()
            else:
                self._failed_at.pop(index, None)

    def open(self, user: str | None = None, password: str | None = None) -> Connection:
        """An open (not yet bound) connection to the first server that answers; DirectoryUnavailable if none."""
        problems = []
        for server in self._in_order():
            conn = Connection(
                server,
                user=user,
                password=password,
                receive_timeout=self._settings.receive_timeout,
                auto_referrals=False,
                raise_exceptions=False,
                read_only=False,
            )
            try:
                conn.open()
                if conn.socket is None:  # the server closed the connection while it was being opened
                    raise LDAPCommunicationError(f"connection closed while opening: {conn.last_error}")
                if self._settings.tls.start_tls and not server.ssl and not conn.start_tls():
                    raise LDAPStartTLSError(f"StartTLS refused: {conn.result}")
                conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (LDAPCommunicationError, LDAPExceptionError, OSError) as exc:
                conn.unbind()
                self._mark(server, failed=True)
                log.warning("directory server %s unusable: %s", server.name, exc)
                problems.append(f"{server.name}: {type(exc).__name__}")
                continue
            self._mark(server, failed=False)
            return conn
        raise errors.DirectoryUnavailable("no directory server answered: " + "; ".join(problems))

    def report_failure(self, conn: Connection) -> None:
        """Called when a connection died mid-operation, so the next open() tries another server first."""
        self._mark(conn.server, failed=True)

    @contextmanager
    def bound_as(self, dn: str, password: str, refusal: Callable[[str], errors.LoginRefused]) -> Iterator[Connection]:
        """A connection bound as `dn` with the person's own password, to read their entry as them, closed after.

        A bind refused for its credentials raises what `refusal` makes of the server's message (AD says there why:
        locked, expired...); any other refusal is the gateway's configuration. A connection lost meanwhile is this
        server's failure, reported so the next login tries another first.
        """
        conn = self.open(dn, password)
        try:
            if not conn.bind():
                if conn.result["result"] == INVALID_CREDENTIALS:
                    raise refusal(conn.result.get("message", ""))
                raise errors.DirectoryMisconfigured(f"bind refused: {conn.result['description']}")
            yield conn
        except LDAPCommunicationError as exc:
            self.report_failure(conn)
            raise errors.DirectoryUnavailable(f"directory connection lost during login: {exc}") from None
        finally:
            conn.unbind()
