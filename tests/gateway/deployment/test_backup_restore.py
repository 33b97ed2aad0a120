"""Backup → wipe → restore, as an operator runs it (the ``sohogw`` command in a child process), on SQLite and on a
real PostgreSQL server: the audit chain verifies, issued certificates and the CRL are the same bytes, revoked
certificates stay revoked, policy versions and secrets come back; an archive with one altered byte is refused and
leaves nothing behind."""

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from certs.authority import load_authority
from certs.ocsp import CertState
from gateway.audit.models import AuditEvent
from gateway.audit.service import verify_chain
from gateway.db import make_engine, session_scope
from gateway.deployment.dumps import database_is_empty
from gateway.directory.builtin import BuiltinDirectory
from gateway.directory.settings import DirectorySettings
from gateway.pki.models import CrlPublication, IssuedCertificate
from gateway.pki.service import Actor, certificate_status, issue_agent_certificate, publication_urls, revoke
from gateway.policies.models import PolicyVersion
from gateway.policies.service import import_policy
from policy.document import DEFAULT_POLICY_FILE
from tests.gateway.deployment.conftest import PASSPHRASE, run_sohogw
from tests.support.postgres import create_database
from tests.vpn.keys import key_pair

ADMIN = Actor("cli:test", "local")
BACKUP_PASSPHRASE = "backup-passphrase-kept-apart-2026"


def _state(db: Session) -> dict[str, object]:
    """Everything the restore must bring back exactly, as plain values."""
    return {
        "certificates": [
            (c.serial, c.pem, c.revoked_at and c.revoked_at.replace(tzinfo=None), c.revocation_reason)
            for c in db.exec(select(IssuedCertificate).order_by(col(IssuedCertificate.serial))).all()
        ],
        "crls": [(c.number, c.der) for c in db.exec(select(CrlPublication).order_by(col(CrlPublication.number)))],
        "audit": [(e.seq, e.hash) for e in db.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))],
        "policies": [
            (p.version, p.document) for p in db.exec(select(PolicyVersion).order_by(col(PolicyVersion.version)))
        ],
    }


@pytest.fixture
def gateway_in_use(data_dir: Path, engine: Engine) -> dict[str, object]:
    """A gateway that has issued three certificates, revoked one, published CRLs, taken a policy, has accounts."""
    authority = load_authority(data_dir / "ca", PASSPHRASE)
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        serials = [
            issue_agent_certificate(
                db, authority, upn=f"agent{i}@corp.example", wireguard_key=key_pair()[1], person_id=None, actor=ADMIN,
                now=now,
                lifetime=timedelta(days=7), urls=publication_urls("https://gw.corp.example"),
            ).row.serial
            for i in range(3)
        ]  # fmt: skip
        revoke(db, authority, serials[1], "keyCompromise", actor=ADMIN, now=now, crl_validity=timedelta(hours=24))
        import_policy(db, DEFAULT_POLICY_FILE.read_text(), actor=ADMIN.name, source="local", now=now, comment="v1")
    BuiltinDirectory(DirectorySettings(builtin_file=data_dir / "directory.json")).add_user(
        "agent0", "Agent-Passw0rd-2026", groups=["SOHO-Agents"]
    )
    (data_dir / "vpn").mkdir(mode=0o700)
    (data_dir / "vpn" / "wg.key").write_text("oKtsJ2kQ8cCPpBE3hxQ4Yq6rVQj0Qd0Xn4mC2sQ9kWs=\n")
    (data_dir / "vpn" / "wg.key").chmod(0o600)
    with Session(engine) as db:
        return {"serials": serials, "before": _state(db)}


def _env(data_dir: Path, db_url: str, passphrase_file: bool = True) -> dict[str, str]:
    env = {"SOHOGW_DATA_DIR": str(data_dir), "SOHOGW_DATABASE_URL": db_url}
    if passphrase_file:
        env["SOHOGW_CA__PASSPHRASE_FILE"] = str(data_dir / "ca-passphrase")
    return env


@pytest.fixture
def backup_passphrase(tmp_path: Path) -> Path:
    path = tmp_path / "backup-passphrase"
    path.write_text(BACKUP_PASSPHRASE)
    path.chmod(0o600)
    return path


def _fresh_database(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored' / 'sohogw.db'}"
    return create_database(request.getfixturevalue("postgres_admin_url"), f"sohogw_{uuid.uuid4().hex[:12]}")


def test_backup_wipe_restore_keeps_chain_certificates_crl_and_revocations(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    data_dir: Path,
    db_url: str,
    engine: Engine,
    gateway_in_use: dict[str, object],
    backup_passphrase: Path,
) -> None:
    archive = tmp_path / "gw.sohogw-backup"
    made = run_sohogw("backup", "--out", str(archive), "--passphrase-file", str(backup_passphrase),
                      env=_env(data_dir, db_url))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "3 certificates (1 revoked)" in made.stdout
    assert b"BEGIN CERTIFICATE" not in archive.read_bytes() and b"agent0" not in archive.read_bytes()

    engine.dispose()
    shutil.rmtree(data_dir)  # the wipe: the old data directory and database are gone
    new_data = tmp_path / "restored"
    new_db = _fresh_database(request, db_url, tmp_path)
    restored = run_sohogw("restore", str(archive), "--passphrase-file", str(backup_passphrase),
                          env=_env(new_data, new_db, passphrase_file=False))  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert "audit chain intact" in restored.stdout

    after_engine = make_engine(new_db)
    try:
        with Session(after_engine) as db:
            after = _state(db)
            before = gateway_in_use["before"]
            assert isinstance(before, dict)
            assert after["certificates"] == before["certificates"]
            assert after["crls"] == before["crls"]
            assert after["policies"] == before["policies"]
            # The chain goes on: every earlier row unchanged, then the backup's and the restore's own rows.
            assert after["audit"][: len(before["audit"])] == before["audit"]
            actions = [e.action for e in db.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()]
            assert actions[-2:] == ["backup.create", "backup.restore"]
            assert verify_chain(db).intact
            serials = gateway_in_use["serials"]
            assert isinstance(serials, list)
            assert certificate_status(db, int(serials[1], 16)).state is CertState.REVOKED
            assert certificate_status(db, int(serials[0], 16)).state is CertState.GOOD
            crl = x509.load_der_x509_crl(after["crls"][-1][1])  # type: ignore[index]
            assert crl.get_revoked_certificate_by_serial_number(int(serials[1], 16)) is not None
    finally:
        after_engine.dispose()
    assert (new_data / "vpn" / "wg.key").read_text().startswith("oKtsJ2kQ8")
    assert (new_data / "ca" / "issuing-ca.key.pem").stat().st_mode & 0o077 == 0
    directory = BuiltinDirectory(DirectorySettings(builtin_file=new_data / "directory.json"))
    assert directory.authenticate("agent0", "Agent-Passw0rd-2026").login == "agent0"
    verified = run_sohogw("audit", "verify", env=_env(new_data, new_db))
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout


def test_refused_archives_leave_nothing_and_an_installation_in_use_is_left_alone(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    data_dir: Path,
    db_url: str,
    gateway_in_use: dict[str, object],
    backup_passphrase: Path,
) -> None:
    """One backup, refused five ways: one altered byte (header, middle, last), a wrong passphrase, a target in use."""
    archive = tmp_path / "gw.sohogw-backup"
    run_sohogw("backup", "--out", str(archive), "--passphrase-file", str(backup_passphrase), env=_env(data_dir, db_url))
    good = archive.read_bytes()
    again = run_sohogw("backup", "--out", str(archive), "--passphrase-file", str(backup_passphrase),
                       env=_env(data_dir, db_url))  # fmt: skip
    assert again.returncode == 1 and "never overwrites another" in again.stderr and archive.read_bytes() == good
    new_data = tmp_path / "restored"
    new_db = _fresh_database(request, db_url, tmp_path)
    for where, index in (("header", 20), ("middle", len(good) // 2), ("last byte", len(good) - 1)):
        altered = bytearray(good)
        altered[index] ^= 0x01
        archive.write_bytes(bytes(altered))
        done = run_sohogw("restore", str(archive), "--passphrase-file", str(backup_passphrase),
                          env=_env(new_data, new_db, passphrase_file=False))  # fmt: skip
        assert done.returncode == 1, where
        assert "does not verify" in done.stderr or "header was altered" in done.stderr, (where, done.stderr)
        assert not (new_data / "ca").exists() and not (new_data / "ca-passphrase").exists(), where
        assert database_is_empty(new_db), where

    archive.write_bytes(good)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-backup-passphrase-2026")
    wrong.chmod(0o600)
    done = run_sohogw("restore", str(archive), "--passphrase-file", str(wrong),
                      env=_env(new_data, new_db, passphrase_file=False))  # fmt: skip
    assert done.returncode == 1 and "passphrase is wrong" in done.stderr
    assert database_is_empty(new_db)

    done = run_sohogw("restore", str(archive), "--passphrase-file", str(backup_passphrase), env=_env(data_dir, db_url))
    assert done.returncode == 1 and "restore goes into a fresh installation" in done.stderr
    engine = make_engine(db_url)
    with Session(engine) as db:
        assert verify_chain(db).intact
        last = db.exec(
            select(AuditEvent).where(AuditEvent.action == "backup.create").order_by(col(AuditEvent.seq).desc())
        ).first()
        assert last is not None and last.outcome == "refused"
    engine.dispose()
