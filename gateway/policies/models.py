"""Stored policy versions; the newest is in force."""

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "policy_version"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    document: str = Field(sa_column=Column(Text, nullable=False))
    """The YAML exactly as the admin imported it (comments kept), already validated."""
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    comment: str = Field(default="", max_length=512)
