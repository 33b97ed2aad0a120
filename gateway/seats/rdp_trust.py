"""Trust on first use of an RDP host's certificate, audited: learned once, pinned for every launch after.

For an app whose policy says ``cert_trust_first_use``, the first launch reads the certificate the host presents
(`rdp_certificate_fingerprint`), records it and audits ``seat.rdp_certificate`` / ``trusted_first_use``. Every later
launch compares what the host shows now with the record: the same → guacd gets it as `cert-fingerprints`; another
→ refused and audited (``certificate_changed``) until a security administrator removes the record or pins the new
certificate in policy; none, because the host offers no TLS or cannot be reached → refused and audited
(``unreadable``), since standard RDP security would skip every certificate check. guacd's own `cert-tofu` is never
used: it would trust silently, per guacd host.
"""

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from desktop_broker.guacamole.rdp_certificate import RdpCertificateUnavailable
from gateway.audit.service import record
from gateway.seats.errors import GuacamoleUnavailable
from gateway.seats.models import RdpHostCertificate
from policy import GuacamoleApp

ReadFingerprint = Callable[[str, int], str]
"""host, port → ``sha256:…`` of the certificate it presents now (`rdp_certificate_fingerprint`)."""


def trusted_fingerprint(db: Session, app: GuacamoleApp, login: str, now: datetime, read: ReadFingerprint) -> str | None:
    """The fingerprint guacd must accept for `app`, learning it on first use; None when policy pins or the CAs verify.

    Raises `GuacamoleUnavailable` (audited) when the host cannot be read or offers no TLS (at any launch, not
    only the first) or shows a changed certificate; the caller's transaction must commit that audit row.
    """
    if not app.cert_trust_first_use:
        return None
    host, port = app.host, app.effective_port
    known = db.get(RdpHostCertificate, (host, port))
    try:
        shown = read(host, port)
    except RdpCertificateUnavailable as error:
        # Refused even with a learned fingerprint: a host that now offers no TLS may be a downgrade (standard RDP
        # security has no certificate for guacd to compare), and one the broker cannot probe proves nothing.
        _audit(db, app, login, "unreadable", {"error": str(error), "trusted": known.fingerprint if known else ""})
        raise GuacamoleUnavailable(f"the certificate of {host} could not be read to check it: {error}") from None
    if known is None:
        db.add(RdpHostCertificate(host=host, port=port, fingerprint=shown, first_seen_at=now, first_seen_for=login))
        db.flush()
        _audit(db, app, login, "trusted_first_use", {"fingerprint": shown})
        return shown
    if shown != known.fingerprint:
        _audit(db, app, login, "certificate_changed", {"trusted": known.fingerprint, "shown": shown})
        raise GuacamoleUnavailable(
            f"{host} now shows a different certificate than the one trusted on {known.first_seen_at:%Y-%m-%d}; "
            "a security administrator must check it"
        )
    return known.fingerprint


def _audit(db: Session, app: GuacamoleApp, login: str, outcome: str, detail: dict[str, str]) -> None:
    record(
        db,
        actor=login,
        action="seat.rdp_certificate",
        target=f"{app.host}:{app.effective_port}",
        outcome=outcome,
        detail={"app": app.id, **detail},
    )
