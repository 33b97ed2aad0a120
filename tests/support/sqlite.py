"""SQLite databases for tests, copied from one file migrated once per run (``sqlite_template`` in conftest)."""

import sqlite3
from contextlib import closing
from pathlib import Path


def copy_sqlite(template: Path, target: Path) -> str:
    """A copy of the migrated ``template`` at ``target``, as a URL. SQLite's backup API copies a consistent
    snapshot whatever the journal mode (the engine runs in WAL, where copying the bare file could miss pages)."""
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return f"sqlite:///{target}"
