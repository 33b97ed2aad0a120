"""A gateway with a freshly made CA on each database engine."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.pki.service import Actor, publication_urls
from gateway.settings import Settings, load_settings

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
    yield Pki(settings, authority, engine, now)
