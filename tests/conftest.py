"""Fixtures shared by the whole suite: a database per test, on SQLite and on a real PostgreSQL server.

Each test that asks for ``db_url`` runs twice, once per engine. The schema always comes from the Alembic migrations,
run once per engine per run: SQLite migrates one template file and copies it per test; PostgreSQL migrates one
template database and clones it per test.
"""

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.db import make_engine
from gateway.migrate import upgrade
from tests.directory.samba import SAMBA_PACKAGES, SambaDC, running_samba_dc
from tests.directory.slapd import Slapd, running_slapd
from tests.support.browser import chromium
from tests.support.cgroups import ensure_cgroup_hierarchies
from tests.support.components import IN_CI, require, require_programs
from tests.support.guacamole_lite import installed_modules
from tests.support.postgres import create_database, postgres_bin_dir, running_postgres
from tests.support.sqlite import copy_sqlite

pytest_plugins = ("pytester",)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Seats need cgroups, which `ip netns exec` hides (tests/support/cgroups.py)."""
    ensure_cgroup_hierarchies()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("SOHOGW_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    require("PostgreSQL", postgres_bin_dir() is not None, "Debian: postgresql")
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
    require_programs("samba", "samba-tool", "ldbmodify", install=SAMBA_PACKAGES)
    with running_samba_dc() as dc:
        yield dc


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    require_programs("/usr/sbin/slapd", install="Debian: slapd, ldap-utils")
    with running_slapd() as server:
        yield server


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """guacamole-lite 1.2.0 exactly, from the committed lock file: one definition, so one `npm ci` at most."""
    require_programs("node", "npm", install="Debian: nodejs, npm")
    modules = installed_modules()
    assert json.loads((modules / "guacamole-lite" / "package.json").read_text())["version"] == "1.2.0"
    return modules


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``CI=true`` a skipped test is a failed test: whatever skipped it (a missing program, a fixture's
    ``pytest.skip``), CI is where every tier must run. Only tests marked ``kernel_feature`` may skip there: they
    need a kernel module no package can install on the CI machine, and their skip is listed in the summary."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and not item.get_closest_marker("kernel_feature"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every tier: {reason}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module: each test opens its own context (cookies, cache, locale)."""
    with chromium() as running:
        yield running
