"""Trust on first use of an RDP host's certificate: learned once and audited, then the only one accepted.

The reader is the one outside input replaced here (what the host presents); tests/gateway/seats/test_guacamole_rdp.py
reads a real xrdp's certificate through the same path and has guacd accept exactly it.
"""

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, col, select

from desktop_broker.guacamole.rdp_certificate import RdpCertificateUnavailable
from gateway.audit.models import AuditEvent
from gateway.seats.errors import GuacamoleUnavailable
from gateway.seats.models import RdpHostCertificate
from gateway.seats.rdp_trust import trusted_fingerprint
from policy import GuacamoleApp

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
FIRST = "sha256:" + ":".join(["a1"] * 32)
OTHER = "sha256:" + ":".join(["b2"] * 32)
APP = GuacamoleApp(
    id="billing", title="Billing", backend="guacamole", protocol="rdp", host="rds.example", cert_trust_first_use=True
)


def shows(fingerprint: str | None):  # type: ignore[no-untyped-def]
    def read(host: str, port: int) -> str:
        assert (host, port) == ("rds.example", 3389)
        if fingerprint is None:
            raise RdpCertificateUnavailable("connection refused")
        return fingerprint

    return read


def outcomes(db: Session) -> list[str]:
    query = select(AuditEvent).where(AuditEvent.action == "seat.rdp_certificate").order_by(col(AuditEvent.seq))
    return [event.outcome for event in db.exec(query)]


def test_first_use_is_learned_and_audited_then_pinned(db: Session) -> None:
    assert trusted_fingerprint(db, APP, "agent1", NOW, shows(FIRST)) == FIRST
    db.commit()
    assert trusted_fingerprint(db, APP, "agent2", NOW, shows(FIRST)) == FIRST
    row = db.get(RdpHostCertificate, ("rds.example", 3389))
    assert row is not None and (row.fingerprint, row.first_seen_for) == (FIRST, "agent1")
    assert outcomes(db) == ["trusted_first_use"]


def test_a_changed_certificate_is_refused_and_audited(db: Session) -> None:
    trusted_fingerprint(db, APP, "agent1", NOW, shows(FIRST))
    db.commit()
    with pytest.raises(GuacamoleUnavailable, match="different certificate"):
        trusted_fingerprint(db, APP, "agent2", NOW, shows(OTHER))
    db.commit()
    assert outcomes(db) == ["trusted_first_use", "certificate_changed"]
    assert db.get(RdpHostCertificate, ("rds.example", 3389)).fingerprint == FIRST  # type: ignore[union-attr]


def test_an_unreadable_host_is_not_trusted_blindly(db: Session) -> None:
    with pytest.raises(GuacamoleUnavailable, match="could not be read"):
        trusted_fingerprint(db, APP, "agent1", NOW, shows(None))
    db.commit()
    assert db.get(RdpHostCertificate, ("rds.example", 3389)) is None
    assert outcomes(db) == ["unreadable"]


def test_a_learned_host_that_now_shows_no_certificate_is_refused_and_audited(db: Session) -> None:
    """No TLS now (a downgrade to standard RDP security) or no answer: the learned pin is not used blindly."""
    trusted_fingerprint(db, APP, "agent1", NOW, shows(FIRST))
    db.commit()
    with pytest.raises(GuacamoleUnavailable, match="could not be read"):
        trusted_fingerprint(db, APP, "agent2", NOW, shows(None))
    db.commit()
    assert outcomes(db) == ["trusted_first_use", "unreadable"]
    assert db.get(RdpHostCertificate, ("rds.example", 3389)).fingerprint == FIRST  # type: ignore[union-attr]


def test_apps_that_pin_or_verify_learn_nothing(db: Session) -> None:
    verified = APP.model_copy(update={"cert_trust_first_use": False})
    assert trusted_fingerprint(db, verified, "agent1", NOW, shows(None)) is None
    assert outcomes(db) == []
