"""A throwaway PostgreSQL server for the test run: initdb in a temp dir, run as the ``postgres`` user, on loopback.

``SOHOGW_TEST_POSTGRES_URL`` points the suite at a server of your own instead.
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes] | subprocess.CompletedProcess[bytes]:
    command = ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv
    if kwargs.pop("background", False):
        return subprocess.Popen(command, **kwargs)  # type: ignore[call-overload]
    return subprocess.run(command, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def running_postgres(statement_log: Path | None = None) -> Iterator[str]:
    """Start a server and yield an admin URL (database ``postgres``); stop and delete it afterwards. With
    ``statement_log`` the server writes its log there, and ``log_all_statements`` makes it write every statement."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="sohogw-pg-"))
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    process = None
    try:
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        process = _as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data / "db"),
                "-k",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
                "-c",
                "log_line_prefix=%p|",  # the backend's pid: one pooled connection's statements
            ],
            background=True,
            stdout=subprocess.DEVNULL,
            stderr=statement_log.open("ab") if statement_log else subprocess.DEVNULL,
        )
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:  # type: ignore[union-attr]
                    raise RuntimeError("the test PostgreSQL server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        if process is not None:
            process.terminate()  # type: ignore[union-attr]
            process.wait(timeout=30)  # type: ignore[union-attr]
        shutil.rmtree(data, ignore_errors=True)


def log_all_statements(admin_url: str, on: bool) -> None:
    """Have the server log every statement it receives from now on (``log_statement``), or stop."""
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"ALTER SYSTEM SET log_statement = '{'all' if on else 'none'}'")  # type: ignore[arg-type]
        connection.execute("SELECT pg_reload_conf()")


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` (optionally from a template) and return its SQLAlchemy URL."""
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        clause = f' TEMPLATE "{template}"' if template else ""
        connection.execute(f'CREATE DATABASE "{name}"{clause}')  # type: ignore[arg-type]
    return admin_url.rsplit("/", 1)[0] + "/" + name
