"""A PostgreSQL database of its own for the tests that need several nodes (SQLite refuses a second node)."""

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from gateway.db import make_engine
from tests.support.postgres import create_database


@pytest.fixture
def pg_url(postgres_admin_url: str, postgres_template: str) -> str:
    return create_database(postgres_admin_url, f"sohogw_{uuid.uuid4().hex[:12]}", template=postgres_template)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()
