"""A TCP relay on loopback that a test can cut: every connection through it is closed at once, the listener stays.

Put between the gateway and a real server (Samba, slapd) to take a long-lived connection away the way a firewall
reset or a restarted server does, without disturbing the server or other clients.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class TcpRelay:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0
        """Connections accepted so far, refused ones included."""
        self.refusing = False
        """While True, every new connection is closed as soon as it is accepted (the server looks down)."""
        self.frozen = False
        """While True, relayed bytes are dropped: connections stay open and carry nothing (a silent path)."""
        """While True, every new connection is closed as soon as it is accepted (the server looks down)."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                self.accepted += 1
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if not self.frozen:
                    sink.sendall(data)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every relayed connection (both sides see it end); new connections are still relayed."""
        with self._lock:
            cut, self._open = self._open, []
        for end in cut:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@contextmanager
def tcp_relay(target: tuple[str, int]) -> Iterator[TcpRelay]:
    relay = TcpRelay(target)
    try:
        yield relay
    finally:
        relay.close()
