"""FastAPI dependency aliases shared by every domain's routes: the request's database session, its clock, row ids.

One DB commit or rollback per request happens here; services only flush. A domain's own settings section and
other domain-specific dependencies live in that domain's ``deps.py`` (this module sits below every domain).
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session

from gateway.clock import Clock
from gateway.db import session_scope


def _db(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        yield session


def _clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


# scope="function": commit before the response is sent, so a client that follows a redirect finds what was written.
DbSession = Annotated[Session, Depends(_db, scope="function")]
ClockDep = Annotated[Clock, Depends(_clock)]

MAX_ROW_ID = 2**31 - 1
"""Largest id a table row can have on both databases: the id columns are INTEGER, 32 bits on PostgreSQL (where a
larger number fails the statement, "integer out of range") and 64 on SQLite."""
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
"""A row id in a URL: a larger number is refused (422) before it reaches the database."""
