"""Sealed recordings: the plaintext comes back whole, and any alteration, cut or swap is refused."""

import os
from pathlib import Path

import pytest

from desktop_broker.recording.sealing import CHUNK, SealBroken, load_or_create_key, open_sealed, seal_file


@pytest.fixture
def key(tmp_path: Path) -> bytes:
    return load_or_create_key(tmp_path / "recordings.key")


def _sealed(tmp_path: Path, key: bytes, data: bytes, recording_id: str = "rec1") -> Path:
    plaintext, sealed = tmp_path / "plain", tmp_path / f"{recording_id}.rec"
    plaintext.write_bytes(data)
    seal_file(key, recording_id, plaintext, sealed)
    return sealed


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 17])
def test_a_sealed_recording_opens_to_exactly_its_plaintext(tmp_path: Path, key: bytes, size: int) -> None:
    data = os.urandom(size)
    sealed = _sealed(tmp_path, key, data)
    if size >= 16:  # a shorter plaintext can turn up in random ciphertext by chance
        assert data[:4096] not in sealed.read_bytes()
    assert b"".join(open_sealed(key, "rec1", sealed)) == data
    assert (sealed.stat().st_mode & 0o777) == 0o600


def test_a_flipped_bit_a_cut_end_or_another_recordings_id_is_refused(tmp_path: Path, key: bytes) -> None:
    sealed = _sealed(tmp_path, key, os.urandom(2 * CHUNK + 100))
    original = sealed.read_bytes()
    with pytest.raises(SealBroken):
        list(open_sealed(key, "rec2", sealed))
    sealed.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    with pytest.raises(SealBroken):
        list(open_sealed(key, "rec1", sealed))
    # The last chunk dropped: the chunk now at the end was not sealed as the last one.
    sealed.write_bytes(original[: len(original) - (100 + 16)])
    with pytest.raises(SealBroken):
        list(open_sealed(key, "rec1", sealed))
    sealed.write_bytes(original)
    assert len(b"".join(open_sealed(key, "rec1", sealed))) == 2 * CHUNK + 100


def test_the_key_is_made_once_private_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "recordings.key"
    first = load_or_create_key(path)
    assert load_or_create_key(path) == first and (path.stat().st_mode & 0o777) == 0o600
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        load_or_create_key(path)
