"""Legacy-row adoption as the app runs it (`LegacyAdoption`): it adopts while anything is left to adopt, then stops
looking for good, since only migrations write ``legacy:`` keys. On SQLite and PostgreSQL."""

from datetime import UTC, datetime

from sqlmodel import Session

from gateway.adoption import LegacyAdoption
from gateway.directory import DirectoryUser
from gateway.sessions.models import TotpSecret
from tests.gateway.supervision.conftest import add_session

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AGENT9 = DirectoryUser(dn="cn=agent9", login="agent9", person_id="builtin:agent9")


def _legacy_secret(db: Session, spelling: str) -> None:
    """A TOTP secret as migration 0008 left it: keyed by the name as typed."""
    db.add(TotpSecret(person_id=f"legacy:{spelling}", login=spelling, secret="JBSWY3DPEHPK3PXP", created_at=NOW))
    db.flush()


def test_adoption_runs_while_rows_are_left_then_stops_looking(db: Session) -> None:
    adoption = LegacyAdoption()
    session = add_session(db, "agent9", created_at=NOW)
    _legacy_secret(db, "AGENT9")
    adoption(db, session, AGENT9, NOW)
    assert db.get(TotpSecret, "builtin:agent9") is not None  # adopted: rows were left
    adoption(db, session, AGENT9, NOW)  # finds none left, and remembers it
    db.delete(db.get(TotpSecret, "builtin:agent9"))
    _legacy_secret(db, "Agent9")  # no migration writes one after start: this only shows the look is skipped
    adoption(db, session, AGENT9, NOW)
    assert db.get(TotpSecret, "legacy:Agent9") is not None and db.get(TotpSecret, "builtin:agent9") is None
    LegacyAdoption()(db, session, AGENT9, NOW)  # a new process looks again
    assert db.get(TotpSecret, "builtin:agent9") is not None
