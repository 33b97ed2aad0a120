"""The recordings on disk: where they are, how much room is left, whether guacd still writes a file, sealing.

Plaintext exists only in the in-progress directory while guacd writes it (0700: guacd's user and root); it is
sealed (`desktop_broker.recording.sealing`) and deleted as soon as no process holds it open any more.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.recording.sealing import load_or_create_key, seal_file
from gateway.seats.settings import RecordingSettings


@dataclass(frozen=True, slots=True)
class RecordingFiles:
    """The directories and key of one node's recordings (settings with the data-dir defaults filled in)."""

    in_progress: Path
    sealed: Path
    key_file: Path

    @classmethod
    def of(cls, settings: RecordingSettings) -> "RecordingFiles":
        assert settings.sealed_dir is not None and settings.key_file is not None  # filled by Settings
        return cls(settings.in_progress_dir, settings.sealed_dir, settings.key_file)

    def prepare(self) -> None:
        """Both directories 0700 (the parent of guacd's directory must exist: guacd makes only the last level)."""
        for directory in (self.in_progress, self.sealed):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)

    def key(self) -> bytes:
        return load_or_create_key(self.key_file)

    def plaintext(self, file_name: str) -> Path:
        return self.in_progress / file_name

    def sealed_file(self, recording_id: str) -> Path:
        return self.sealed / f"{recording_id}.rec"

    def bytes_in_progress(self) -> int:
        try:
            return sum(entry.stat().st_size for entry in os.scandir(self.in_progress) if entry.is_file())
        except FileNotFoundError:
            return 0

    def free_bytes(self) -> int:
        """Free space on the fuller of the two disks (they are often one)."""
        return min(shutil.disk_usage(directory).free for directory in (self.in_progress, self.sealed))

    def seal(self, recording_id: str, file_name: str) -> int:
        """Encrypt the finished plaintext, delete it, return the sealed size."""
        plaintext = self.plaintext(file_name)
        size = seal_file(self.key(), recording_id, plaintext, self.sealed_file(recording_id))
        plaintext.unlink()
        return size

    def remove(self, recording_id: str, file_name: str) -> None:
        self.sealed_file(recording_id).unlink(missing_ok=True)
        self.plaintext(file_name).unlink(missing_ok=True)


def held_open(path: Path) -> bool:
    """Whether any process on this host still has `path` open (guacd closes a recording only when its
    connection is freed, a moment after the last user left). Reads ``/proc/*/fd``; root sees every process."""
    target = str(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                continue
    return False
