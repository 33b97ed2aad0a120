"""FastAPI dependency aliases shared by every domain's routes.

One DB commit or rollback per request happens here; services only flush.
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session

from certs.authority import Authority
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.pki.ca import CaNotReady
from gateway.settings import Settings


def _db(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        yield session


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


def _authority(request: Request) -> Authority:
    authority: Authority | None = request.app.state.authority
    if authority is None:
        raise CaNotReady(request.app.state.authority_problem)
    return authority


# scope="function": commit before the response is sent, so a client that follows a redirect finds what was written.
DbSession = Annotated[Session, Depends(_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]
ClockDep = Annotated[Clock, Depends(_clock)]
AuthorityDep = Annotated[Authority, Depends(_authority)]

MAX_ROW_ID = 2**63 - 1
"""Largest id a table row can have (SQLite INTEGER, PostgreSQL BIGINT)."""
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
"""A row id in a URL: a larger number is refused (422) before it reaches the database driver, which cannot bind it."""
