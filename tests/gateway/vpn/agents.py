"""Home sessions of agents for the VPN tests, opened through the real session service.

With a certificate, every cert field comes from it (as `sessions.login` fills them); without one, only a
WireGuard key is set, for the database-level tests that need no CA.
"""

import json
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session

from certs.identity import identity_of
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import open_session


def agent_session(
    db: Session,
    login: str,
    now: datetime,
    *,
    wireguard_key: str | None = None,
    cert: x509.Certificate | None = None,
    state: SessionState = SessionState.ACTIVE,
    groups: tuple[str, ...] = ("SOHO-Agents",),
    roles: str = "agent",
    lifetime: timedelta = timedelta(hours=8),
    node: str = "",
) -> tuple[HomeSession, str]:
    """Open (flush, not commit) a session for `login`; returns it and its cookie token. The caller commits."""
    session = HomeSession(
        id="",
        token_sha256="",
        csrf_token="",
        state=state,
        person_id=f"test:{login}",
        login=login,
        user_dn=login,
        roles=roles,
        groups=json.dumps(list(groups)),
        policy_groups=json.dumps(list(groups)),
        wireguard_key=wireguard_key,
        created_at=now,
        last_seen_at=now,
        last_checked_at=now,
        idle_timeout_seconds=900,
        expires_at=now + lifetime,
        node=node,
    )
    if cert is not None:
        identity = identity_of(cert)
        session.cert_serial = f"{identity.serial:X}"
        session.cert_issuer = identity.issuer
        session.cert_fingerprint = identity.fingerprint_sha256
        session.cert_not_after = identity.not_after
        session.wireguard_key = identity.wireguard_public_key
        session.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return session, open_session(db, session)
