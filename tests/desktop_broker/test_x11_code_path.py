"""Seat users can import the published application even when the project sits where only root can look."""

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_broker.x11.code_path import PACKAGE, readable_code_root

RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory others may enter (pytest's own tmp_path sits under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="sohogw-code-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _import_as_nobody(python_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNUSER, "-u", "nobody", "--", "/usr/bin/python3", "-c", "import desktop_broker.apps.call_state"],
        env={"PYTHONPATH": str(python_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd="/",
    )


def test_a_package_behind_a_private_directory_is_copied_where_seat_users_can_import_it(open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    package = private / "desktop_broker"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    assert _import_as_nobody(private).returncode != 0  # the situation the copy exists for

    shared = open_dir / "shared"
    root = readable_code_root(package, shared)
    assert root.parent == shared
    assert _import_as_nobody(root).returncode == 0, _import_as_nobody(root).stderr
    assert readable_code_root(package, shared) == root  # same code, same copy


def test_a_package_everyone_can_read_is_used_where_it_is(open_dir: Path) -> None:
    public = open_dir / "public"
    shutil.copytree(PACKAGE, public / "desktop_broker", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (public, *public.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert readable_code_root(public / "desktop_broker", open_dir / "shared") == public
    assert not (open_dir / "shared").exists()
