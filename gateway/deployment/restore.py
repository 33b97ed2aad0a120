"""``sohogw restore``: bring a backup back into a fresh data directory and an empty database, then prove it.

The archive is decrypted and verified whole before anything is put in place; then the database copy is loaded,
the CA and the secrets are written where the settings of the new installation expect them, and the result is
checked against the archive's manifest: the audit chain verifies, the certificate register (revocations included)
and the newest CRL are the same bytes, the CA opens with the restored passphrase. Any failure removes what the
restore wrote, so a second try starts clean.
"""

import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from certs.authority import CA_FILES, load_authority
from gateway.audit.service import record, verify_chain
from gateway.db import make_engine, session_scope
from gateway.deployment import backup
from gateway.deployment.dumps import database_is_empty, load_database
from gateway.deployment.errors import ArchiveRefused, RestoreRefused
from gateway.deployment.facts import DatabaseFacts, read_facts
from gateway.deployment.sealed import unseal
from gateway.migrate import upgrade
from gateway.settings import Settings

PRIVATE = 0o600
CERTIFICATE = 0o644


@dataclass(frozen=True)
class Restored:
    facts: DatabaseFacts
    audit_rows_checked: int
    passphrase_file: Path
    config_copy: Path | None


def _destinations(settings: Settings) -> dict[str, Path]:
    """Where each secret of the archive goes in this installation. A CA passphrase file the settings already name
    is not overwritten: it must hold the archive's passphrase (checked in `_put_files`)."""
    data = settings.data_dir
    return {
        backup.CA_PASSPHRASE_ENTRY: data / "ca-passphrase",
        backup.WIREGUARD_KEY_ENTRY: settings.vpn.key_file(data),
        backup.DIRECTORY_ENTRY: settings.directory_settings.builtin_file or data / "directory.json",
        backup.CONFIG_ENTRY: data / "restored-sohogw.toml",
    }


def _refuse_unless_fresh(settings: Settings) -> None:
    present = [str(settings.ca_directory / name) for name in CA_FILES if (settings.ca_directory / name).exists()]
    present += [str(path) for path in _destinations(settings).values() if path.exists()]
    if present:
        raise RestoreRefused(f"restore goes into a fresh installation, but these exist: {', '.join(present)}")
    if not database_is_empty(settings.db_url):
        raise RestoreRefused("the database already has tables; restore into an empty database")


def _unpack(archive: Path, passphrase: bytes, work: Path) -> dict[str, object]:
    plain = work / "archive.tar"
    with archive.open("rb") as source, plain.open("wb") as target:
        unseal(source, target, passphrase)
    with tarfile.open(plain) as tar:
        for member in tar.getmembers():
            name = member.name
            if not (member.isfile() or member.isdir()) or name.startswith("/") or ".." in Path(name).parts:
                raise ArchiveRefused(f"the archive holds an unexpected entry {name!r}")
        tar.extractall(work / "files")  # noqa: S202 - every member was checked above
    manifest: dict[str, object] = json.loads((work / "files" / backup.MANIFEST).read_text())
    if manifest.get("format") != backup.FORMAT:
        raise ArchiveRefused(f"archive format {manifest.get('format')!r} is not one this release reads")
    return manifest


def _place(source: Path, target: Path, mode: int, written: list[Path]) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    written.append(target)
    target.chmod(mode)


def _put_files(settings: Settings, files: Path, written: list[Path]) -> None:
    ca = settings.ca_directory
    for path in sorted((files / backup.CA_FOLDER).iterdir()):
        _place(path, ca / path.name, PRIVATE if path.name.endswith(".key.pem") else CERTIFICATE, written)
    ca.chmod(0o700)
    configured = settings.ca.read_passphrase()
    archived = (files / backup.CA_PASSPHRASE_ENTRY).read_text()
    if configured is not None and configured != archived:
        raise RestoreRefused("the configured CA passphrase differs from the archive's: the restored CA would not open")
    for name, target in _destinations(settings).items():
        if (files / name).exists() and not (name == backup.CA_PASSPHRASE_ENTRY and configured is not None):
            _place(files / name, target, PRIVATE, written)


def _prove(settings: Settings, expected: dict[str, object], ca_passphrase: str) -> int:
    engine = make_engine(settings.db_url)
    try:
        with session_scope(engine) as db:
            chain = verify_chain(db)
            facts = read_facts(db)
    finally:
        engine.dispose()
    if not chain.intact:
        raise RestoreRefused(f"the restored audit chain does not verify: {chain.problem}")
    differ = [key for key, value in facts.as_dict().items() if expected.get(key) != value]
    if differ:
        raise RestoreRefused(f"the restored database differs from the archive's manifest in: {', '.join(differ)}")
    load_authority(settings.ca_directory, ca_passphrase)
    return chain.rows_checked


def restore_backup(settings: Settings, archive: Path, passphrase: bytes, *, actor: str) -> Restored:
    _refuse_unless_fresh(settings)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix=".restore-") as work:
        manifest = _unpack(archive, passphrase, Path(work))
        files = Path(work) / "files"
        expected = manifest["facts"]
        assert isinstance(expected, dict)
        try:
            written += load_database(settings.db_url, files, str(manifest["database_file"]))
            _put_files(settings, files, written)
            checked = _prove(settings, expected, (files / backup.CA_PASSPHRASE_ENTRY).read_text())
        except BaseException:
            for path in written:  # PostgreSQL: pg_restore ran in one transaction; a later failure leaves the tables
                path.unlink(missing_ok=True)
            raise
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    with session_scope(engine) as db:
        record(db, actor=actor, source="local", action="backup.restore", outcome="success", target=str(archive),
               detail={"created_at": manifest["created_at"], "node": manifest["node"]})  # fmt: skip
    engine.dispose()
    passphrase_file = settings.ca.passphrase_file or _destinations(settings)[backup.CA_PASSPHRASE_ENTRY]
    config_copy = _destinations(settings)[backup.CONFIG_ENTRY]
    return Restored(DatabaseFacts(**expected), checked, passphrase_file, config_copy if config_copy.exists() else None)
