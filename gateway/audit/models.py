"""Audit rows and the head of their hash chain."""

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


class AuditEvent(SQLModel, table=True):
    """One security event: who did what to what, when, from where, and how it ended.

    ``seq`` is assigned by the chain (not by the database) so that a deleted row leaves a gap that verification finds.
    """

    __tablename__ = "audit_event"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    actor: str = Field(max_length=255, index=True)
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=512)
    outcome: str = Field(max_length=32)
    source: str = Field(default="", max_length=64)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64, unique=True)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """The single row that holds the chain's last sequence number and hash.

    Appenders update it first: on PostgreSQL the row lock serialises writers of all nodes, on SQLite the update takes
    the database's write lock, so two appends can never fork the chain. Comparing it with the last row also reveals a
    truncated tail.
    """

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)
