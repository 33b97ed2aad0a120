"""A consistent copy of the database and its way back: SQLite's online backup, PostgreSQL's pg_dump/pg_restore.

Both copy one snapshot while the gateway keeps serving: SQLite's backup API copies pages under a read lock,
pg_dump reads in one repeatable-read transaction. The password of a PostgreSQL URL goes to the tools through
``PGPASSWORD``, never their argv (every local user can read argv in /proc).
"""

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from gateway.db import make_engine
from gateway.deployment.errors import DumpFailed

SQLITE_FILE = "database.sqlite"
POSTGRES_FILE = "database.pgdump"
T = TypeVar("T")


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without its password, and the environment that carries the password."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise DumpFailed(f"{name} is not installed: apt-get install postgresql-client")
    return found


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DumpFailed(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-1000:]}")


def dump_database(url: str, folder: Path, read_facts: Callable[[Session], T]) -> tuple[str, T]:
    """Write a consistent copy of the database into ``folder``; return the file's name and ``read_facts`` of
    exactly the data copied (SQLite: read from the copy; PostgreSQL: pg_dump runs on the snapshot the facts were
    read in, exported with ``pg_export_snapshot``)."""
    if url.startswith("sqlite:///"):
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(folder / SQLITE_FILE)
        try:
            with target:
                source.backup(target)
        finally:
            source.close()
            target.close()
        copy = create_engine(f"sqlite:///{folder / SQLITE_FILE}")
        try:
            with Session(copy) as db:
                return SQLITE_FILE, read_facts(db)
        finally:
            copy.dispose()
    dsn, env = libpq_target(url)
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            facts = read_facts(Session(bind=connection))
            _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                  f"--file={folder / POSTGRES_FILE}", f"--dbname={dsn}"], env)  # fmt: skip
    finally:
        engine.dispose()
    return POSTGRES_FILE, facts


def database_is_empty(url: str) -> bool:
    """True when the database has no tables yet (a SQLite file that does not exist counts as empty)."""
    if url.startswith("sqlite:///") and not _sqlite_path(url).exists():
        return True
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return not inspect(connection).get_table_names()
    finally:
        engine.dispose()


def load_database(url: str, folder: Path, name: str) -> list[Path]:
    """Put the copy ``folder/name`` into the empty database at ``url`` (the caller checked it is empty); return the
    files made (SQLite), for the caller to remove if what follows fails."""
    if name == SQLITE_FILE:
        if not url.startswith("sqlite:///"):
            raise DumpFailed("the archive holds a SQLite database; set database_url to a sqlite:/// path to restore it")
        path = _sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        shutil.copyfile(folder / name, path)
        path.chmod(0o600)
        return [path]
    if not url.startswith("postgresql"):
        raise DumpFailed("the archive holds a PostgreSQL dump; set database_url to an empty PostgreSQL database")
    dsn, env = libpq_target(url)
    _run([_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
          f"--dbname={dsn}", str(folder / name)], env)  # fmt: skip
    return []
