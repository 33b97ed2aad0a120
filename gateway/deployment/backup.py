"""``sohogw backup``: everything a restore needs, in one encrypted, authenticated archive.

Inside (a tar, then sealed by `sealed.py`): ``manifest.json`` (what the copy holds, for the restore to check),
the database copy (policy versions, the certificate register, CRLs and the audit chain live there), the CA
directory, and the secrets without which a restored gateway would not work the same: the CA passphrase, the
WireGuard private key agents' configurations name, the built-in directory and the configuration file (directory
bind password, broker and platform secrets). NetBird's operators learnt that a restore with mismatched secrets fails.
"""

import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.service import record
from gateway.clock import utcnow
from gateway.db import make_engine, session_scope
from gateway.deployment.dumps import dump_database
from gateway.deployment.facts import DatabaseFacts, read_facts
from gateway.deployment.sealed import seal
from gateway.errors import GatewayError
from gateway.settings import CONFIG_ENV, Settings

FORMAT = 1
MANIFEST = "manifest.json"
CA_FOLDER = "ca"
CA_PASSPHRASE_ENTRY = "secrets/ca-passphrase"  # noqa: S105 - a name inside the archive, not a secret
WIREGUARD_KEY_ENTRY = "secrets/wireguard.key"
DIRECTORY_ENTRY = "secrets/directory.json"
CONFIG_ENTRY = "secrets/sohogw.toml"
"""Names inside the archive; the restore maps each to its place in the new installation."""


@dataclass(frozen=True)
class BackupMade:
    path: Path
    size: int
    facts: DatabaseFacts


def _secret_files(settings: Settings) -> dict[str, Path]:
    """The secrets this gateway has, by their name in the archive."""
    found: dict[str, Path] = {}
    wireguard_key = settings.vpn.key_file(settings.data_dir)
    if wireguard_key.exists():
        found[WIREGUARD_KEY_ENTRY] = wireguard_key
    directory = settings.directory_settings
    if directory.kind == "builtin" and directory.builtin_file is not None and directory.builtin_file.exists():
        found[DIRECTORY_ENTRY] = directory.builtin_file
    config = os.environ.get(CONFIG_ENV)
    if config:
        found[CONFIG_ENTRY] = Path(config)
    return found


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o600
    archive.addfile(info, io.BytesIO(data))


def create_backup(settings: Settings, out: Path, passphrase: bytes, *, actor: str) -> BackupMade:
    """Write the archive to ``out`` (refusing to overwrite one); the CA passphrase must be configured. The start,
    or the refusal, is audited in its own commit first, so the archive holds the row that made it."""
    ca_passphrase = settings.ca.read_passphrase()
    problem = ""
    if out.exists():
        problem = f"{out} exists; give a new file name (a backup never overwrites another)"
    elif ca_passphrase is None:
        problem = "set ca.passphrase_file: a backup without the CA passphrase could not be restored"
    engine = make_engine(settings.db_url)
    with session_scope(engine) as db:
        record(db, actor=actor, source="local", action="backup.create", outcome="refused" if problem else "started",
               target=str(out), detail={"problem": problem} if problem else None)  # fmt: skip
    engine.dispose()
    if problem or ca_passphrase is None:
        raise GatewayError(problem)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".sohogw-backup-") as work:
        folder = Path(work)
        database_file, facts = dump_database(settings.db_url, folder, read_facts)
        manifest = {
            "format": FORMAT,
            "created_at": utcnow().isoformat(),
            "node": settings.node_name,
            "database_file": database_file,
            "facts": facts.as_dict(),
        }
        plain = folder / "archive.tar"
        with tarfile.open(plain, "w") as archive:
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
            archive.add(folder / database_file, database_file)
            for path in sorted(settings.ca_directory.iterdir()):
                archive.add(path, f"{CA_FOLDER}/{path.name}")
            _add_bytes(archive, CA_PASSPHRASE_ENTRY, ca_passphrase.encode())
            for name, path in _secret_files(settings).items():
                archive.add(path, name)
        partial = out.with_name(out.name + ".partial")
        with (
            plain.open("rb") as source,
            os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as target,
        ):
            seal(source, target, passphrase)
        partial.rename(out)
    return BackupMade(out, out.stat().st_size, facts)
