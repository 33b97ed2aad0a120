"""Alembic environment: the metadata comes from the one model registry, the URL from the caller or the settings."""

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import gateway.models  # noqa: F401  (registers every table on SQLModel.metadata)
from gateway.db import make_engine

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from gateway.settings import get_settings

    return get_settings().db_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=SQLModel.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several nodes starting at once (`serve` upgrades first) take turns: the next one waits here, then
                # reads the revision the first committed and has nothing left to do. Released at commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('sohogw.migrations'))"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
