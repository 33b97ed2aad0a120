"""A gateway with a freshly made CA on each database engine."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.cli import cli
from gateway.directory import BuiltinDirectory
from gateway.pki.service import Actor, publication_urls
from gateway.settings import Settings, get_settings, load_settings

PASSPHRASE = "test-ca-passphrase"


@dataclass
class Pki:
    settings: Settings
    authority: Authority
    engine: Engine
    now: datetime

    @property
    def urls(self):  # type: ignore[no-untyped-def]
        return publication_urls(self.settings.public_url)

    actor = Actor("admin@corp.example", "192.0.2.10")
    lifetime = timedelta(days=7)


@pytest.fixture
def pki(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Pki]:
    settings = load_settings(data_dir=tmp_path, database_url=db_url, ca={"passphrase": PASSPHRASE})
    now = datetime.now(UTC)
    authority = init_authority(settings.ca_directory, PASSPHRASE, "Corp Example", now)
    # The agent the CLI tests issue to: `sohogw cert` binds an agent certificate to the directory entry of its UPN.
    BuiltinDirectory(settings.directory_settings).add_user("alice", "Alice-Passw0rd-2026", upn="alice@corp.example")
    yield Pki(settings, authority, engine, now)


@pytest.fixture
def run(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Invoke the `sohogw` CLI against this test's database and CA."""
    monkeypatch.setenv("SOHOGW_DATA_DIR", str(pki.settings.data_dir))
    monkeypatch.setenv("SOHOGW_DATABASE_URL", pki.settings.db_url)
    monkeypatch.setenv("SOHOGW_CA__PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()
