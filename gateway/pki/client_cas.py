"""The CAs the portal's TLS layer asks browsers for and accepts, kept equal to the trusted CAs while it runs.

A company CA imported on any node (`sohogw ca trust`) reaches every node's live TLS context within
``REFRESH_SECONDS``, without a restart: the bundle file is rewritten and the new certificates are added to the
context that uvicorn serves with. OpenSSL can add CAs to a live context but not take them out, so a CA whose trust
is withdrawn leaves the TLS layer at the next restart; it grants nothing meanwhile, because the login verifies
every client chain against the database's list (`gateway.pki.trust.verify_client`).
"""

import logging
import ssl
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine

from certs.authority import Authority
from gateway.db import session_scope
from gateway.pki.trust import trust_store

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30


class ClientCaBundle:
    """The PEM bundle at ``path`` and, once serving, the TLS context it feeds."""

    def __init__(self, engine: Engine, authority: Authority, path: Path) -> None:
        self.engine, self.authority, self.path = engine, authority, path
        self.context: ssl.SSLContext | None = None
        self._pem = b""

    def _current(self) -> bytes:
        with session_scope(self.engine) as db:
            store = trust_store(db, self.authority)
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (*store.intermediates, *store.anchors))

    def refresh(self) -> bool:
        """Rewrite the bundle and extend the live context when the trusted CAs changed; True when they had."""
        pem = self._current()
        if pem == self._pem:
            return False
        self.path.write_bytes(pem)
        if self.context is not None:
            self.context.load_verify_locations(cadata=pem.decode())
            log.info("client certificate CAs refreshed: %d certificates", pem.count(b"BEGIN CERTIFICATE"))
        self._pem = pem
        return True
