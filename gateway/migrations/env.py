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
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table by copying it and dropping the original; with foreign keys on, that
            # drop deletes every row that references the table ON DELETE CASCADE (a live session's tunnel and seat
            # leases). SQLite's own procedure (sqlite.org/lang_altertable.html, "other kinds of table schema
            # changes"): foreign keys off outside the transaction, rebuild, then foreign_key_check before commit.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several nodes starting at once (`serve` upgrades first) take turns: the next one waits here, then
                # reads the revision the first committed and has nothing left to do. Released at commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('sohogw.migrations'))"))
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose references are broken: {broken[:5]}")
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
