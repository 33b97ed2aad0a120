"""Where seat users import the published application from.

The project may live where only root can look (a clone under /root, a venv in a 0700 home). Seat users then cannot
import the demo application, so the ``desktop_broker`` package is copied once per process into a directory every
user may read, named by a digest of its contents: brokers running the same code share one copy, and a copy appears
by one atomic rename, so a concurrent broker never sees half a tree.
"""

import hashlib
import os
import shutil
import stat
import tempfile
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
SHARED_CODE_ROOT = Path("/var/lib/sohogw/code")
_COPIED = ("*.py", "*.json")


def _readable_by_everyone(path: Path) -> bool:
    """Every directory up to ``path`` can be entered by others, and ``path`` itself read by them."""
    if not path.stat().st_mode & stat.S_IROTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in (path, *path.parents))


def _digest(package: Path) -> str:
    digest = hashlib.sha256()
    for pattern in _COPIED:
        for file in sorted(package.rglob(pattern)):
            digest.update(str(file.relative_to(package)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def _open_up(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        Path(directory).chmod(0o755)
        for name in files:
            Path(directory, name).chmod(0o644)


def readable_code_root(package: Path = PACKAGE, shared_root: Path = SHARED_CODE_ROOT) -> Path:
    """A directory to put on the seat's PYTHONPATH from which ``package`` can be imported by any user."""
    if _readable_by_everyone(package):
        return package.parent
    shared_root.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = shared_root / _digest(package)
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=shared_root))
    shutil.copytree(package, staging / package.name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    _open_up(staging)
    try:
        staging.rename(target)
    except OSError:  # another broker made the same copy first
        shutil.rmtree(staging, ignore_errors=True)
    return target


@cache
def seat_python_path() -> str:
    return str(readable_code_root())
