"""One connection carrying searches that never end, read without waiting for their end.

ldap3's synchronous connection waits for a search's ``searchResDone``, which a change notification or a
refreshAndPersist search never sends, and its asynchronous strategies spin on a socket with a timeout. So the
requests go out with ``Connection.send`` and the socket is read here, message by message, with ldap3's own
framing and decoding (``strategy.receiving``, ``decode_response_fast``). When the connection has been quiet for a
while a heartbeat (a rootDSE read) proves the server still answers.
"""

import time
from contextlib import suppress
from typing import Any

from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import search_operation
from ldap3.utils.asn1 import decode_message_fast

from gateway.directory.change_feeds import ChangeFeed, Search


class SubscriptionLost(Exception):
    """The subscription cannot go on; the message says why."""


def search_request(base: str, scope: str, attributes: list[str]) -> Any:
    return search_operation(base, "(objectClass=*)", scope, "NEVER", attributes, 0, 0, False, True, True, None)


class WatchedConnection:
    """One bound connection carrying watched searches and, when quiet, a heartbeat.

    A first heartbeat goes out right behind the watched searches: a server refuses a search it will not watch
    (an unknown critical control, AD's scope rules) at once, so the heartbeat's answer arriving with no refusal
    before it is what ``confirmed`` means — a sent search is not yet a subscription.
    """

    def __init__(self, conn: Connection, searches: list[Search], feed: ChangeFeed) -> None:
        self.conn = conn
        requests = (search_request(base, scope, feed.attributes()) for base, scope in searches)
        self.watched = {conn.send("searchRequest", request, feed.controls()) for request in requests}
        self.heard_at = time.monotonic()
        self.heartbeat: tuple[int, float] | None = None  # message id, sent at
        self.confirmed = False
        self._send_heartbeat(self.heard_at)

    def _send_heartbeat(self, now: float) -> None:
        self.heartbeat = (self.conn.send("searchRequest", search_request("", BASE, ["1.1"])), now)

    def answered(self, response: dict[str, Any]) -> None:
        """Note a message that is not for a watched search: the end of the heartbeat's read confirms."""
        ends_heartbeat = self.heartbeat is not None and response["message_id"] == self.heartbeat[0]
        if ends_heartbeat and response.get("type") == "searchResDone":
            self.heartbeat, self.confirmed = None, True

    def has_buffered(self) -> bool:
        """TLS may hold decrypted bytes the socket no longer shows as readable."""
        return bool(getattr(self.conn.socket, "pending", lambda: 0)())

    def read(self) -> list[dict[str, Any]]:
        """The messages that arrived; SubscriptionLost when the connection closed or failed."""
        try:
            raw = self.conn.strategy.receiving()
        except (LDAPException, OSError) as error:
            raise SubscriptionLost(f"connection failed: {error}") from None
        if not raw:
            raise SubscriptionLost("the server closed the connection")
        self.heard_at = time.monotonic()
        responses = []
        for message in raw:
            decoded = decode_message_fast(message)
            response = self.conn.strategy.decode_response_fast(decoded)
            response["message_id"] = int(decoded["messageID"])
            responses.append(response)
        return responses

    def beat(self, heartbeat_seconds: float, answer_seconds: float) -> None:
        now = time.monotonic()
        if self.heartbeat is not None:
            if now - self.heartbeat[1] > answer_seconds:
                raise SubscriptionLost(f"no answer to a heartbeat within {answer_seconds:g} s")
        elif now - self.heard_at >= heartbeat_seconds:
            self._send_heartbeat(now)

    def close(self) -> None:
        with suppress(LDAPException, OSError):
            self.conn.unbind()
