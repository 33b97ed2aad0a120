"""Fixtures shared by the whole suite: a database per test, on SQLite and on a real PostgreSQL server.

Each test that asks for ``db_url`` runs twice, once per engine. The schema always comes from the Alembic migrations,
run once per engine per run: SQLite migrates one template file and copies it per test; PostgreSQL migrates one
template database and clones it per test.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.db import make_engine
from gateway.migrate import upgrade
from tests.directory.samba import SambaDC, running_samba_dc
from tests.directory.slapd import Slapd, running_slapd
from tests.support.postgres import create_database, postgres_bin_dir, running_postgres
from tests.support.sqlite import copy_sqlite

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("SOHOGW_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if postgres_bin_dir() is None:
        if IN_CI:
            pytest.fail("PostgreSQL is required in CI but is not installed")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql)")
    with running_postgres() as admin_url:
        yield admin_url


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> str:
    name = f"sohogw_template_{uuid.uuid4().hex[:8]}"
    upgrade(create_database(postgres_admin_url, name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to the head, for the whole run."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        return copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "sohogw.db")
    admin_url = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("postgres_template")
    return create_database(admin_url, f"sohogw_{uuid.uuid4().hex[:12]}", template=template)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session whose work the test commits or not; closed (and rolled back if open) at the end."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture(scope="session")
def samba_dc() -> Iterator[SambaDC]:
    """One throwaway Samba AD DC for the whole run (Samba cannot move off ports 389/636: one per namespace)."""
    with running_samba_dc() as dc:
        yield dc


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    with running_slapd() as server:
        yield server
