"""The CA on disk: created once, keys encrypted and private, loading refuses what is unsafe."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs import (
    Authority,
    AuthorityExists,
    AuthorityMissing,
    KeyFilePermissionsTooOpen,
    PassphraseRequired,
    WrongPassphrase,
    init_authority,
    load_authority,
)
from certs.authority import CA_FILES, ISSUING_KEY, ROOT_KEY
from tests.certs.conftest import PASSPHRASE


def test_init_writes_encrypted_keys_readable_by_owner_only(authority: Authority, ca_dir: Path) -> None:
    assert sorted(p.name for p in ca_dir.iterdir()) == sorted(CA_FILES)
    for key_file in (ROOT_KEY, ISSUING_KEY):
        path = ca_dir / key_file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700


def test_root_and_issuing_ca_are_p256_and_chained(authority: Authority) -> None:
    assert isinstance(authority.issuing_cert.public_key(), ec.EllipticCurvePublicKey)
    assert authority.issuing_cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    authority.issuing_cert.verify_directly_issued_by(authority.root_cert)
    assert authority.chain == [authority.issuing_cert, authority.root_cert]
    assert authority.org_name == "Example Telecom"


def test_load_returns_the_same_issuing_ca(authority: Authority, ca_dir: Path) -> None:
    loaded = load_authority(ca_dir, PASSPHRASE)
    assert loaded.issuing_cert == authority.issuing_cert
    assert loaded.root_cert == authority.root_cert
    assert loaded.issuing_key.private_numbers() == authority.issuing_key.private_numbers()


def test_init_refuses_to_overwrite_an_existing_ca(authority: Authority, ca_dir: Path, now: datetime) -> None:
    before = (ca_dir / ISSUING_KEY).read_bytes()
    with pytest.raises(AuthorityExists, match="refusing to overwrite"):
        init_authority(ca_dir, PASSPHRASE, "Other Org", now)
    assert (ca_dir / ISSUING_KEY).read_bytes() == before


def test_init_refuses_an_empty_passphrase(ca_dir: Path, now: datetime) -> None:
    with pytest.raises(PassphraseRequired):
        init_authority(ca_dir, "", "Example Telecom", now)
    assert not ca_dir.exists()


def test_load_refuses_a_key_file_readable_by_group(authority: Authority, ca_dir: Path) -> None:
    os.chmod(ca_dir / ISSUING_KEY, 0o640)
    with pytest.raises(KeyFilePermissionsTooOpen, match=str(ca_dir / ISSUING_KEY)):
        load_authority(ca_dir, PASSPHRASE)


def test_load_refuses_a_key_file_readable_by_others(authority: Authority, ca_dir: Path) -> None:
    os.chmod(ca_dir / ISSUING_KEY, 0o604)
    with pytest.raises(KeyFilePermissionsTooOpen, match="chmod 600"):
        load_authority(ca_dir, PASSPHRASE)


def test_load_refuses_a_wrong_passphrase(authority: Authority, ca_dir: Path) -> None:
    with pytest.raises(WrongPassphrase, match=str(ca_dir / ISSUING_KEY)):
        load_authority(ca_dir, "not the passphrase")


def test_load_of_a_missing_ca_says_to_initialise(tmp_path: Path) -> None:
    with pytest.raises(AuthorityMissing, match="initialisation"):
        load_authority(tmp_path / "nothing-here", PASSPHRASE)


def test_load_refuses_an_issuing_key_that_does_not_match_its_certificate(
    authority: Authority, ca_dir: Path, now: datetime, tmp_path: Path
) -> None:
    init_authority(tmp_path / "other", PASSPHRASE, "Other Org", now)
    (ca_dir / ISSUING_KEY).unlink()
    (ca_dir / ISSUING_KEY).write_bytes((tmp_path / "other" / ISSUING_KEY).read_bytes())
    os.chmod(ca_dir / ISSUING_KEY, 0o600)
    with pytest.raises(AuthorityMissing, match="does not belong"):
        load_authority(ca_dir, PASSPHRASE)
