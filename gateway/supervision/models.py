"""Supervision's tables: work states, alerts, screen watches, help requests, bulletins, standby agents, call-ins."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, DateTime, Text, false
from sqlmodel import Field, SQLModel


class WorkStatus(StrEnum):
    """The agent states of call-center practice; ``offline`` is a logged-in agent not taking calls yet."""

    READY = "ready"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    BREAK = "break"
    OFFLINE = "offline"


class WorkState(SQLModel, table=True):
    """One stretch of one work status in one home session; the open row (``ended_at`` None) is the current one.

    Rows are never deleted: reports add up the stretches.
    """

    __tablename__ = "supervision_work_state"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(max_length=32, index=True)
    login: str = Field(max_length=255, index=True)
    status: WorkStatus = Field(max_length=16)
    reason: str = Field(default="", max_length=64)
    """Why a break (lunch, training, technical …); empty for other states."""
    source: str = Field(default="portal", max_length=16)
    """Who said so: ``portal`` (the agent), ``platform`` (the contact-center API) or ``system`` (session ended)."""
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))


class Alert(SQLModel, table=True):
    """A raised alert. ``open_key`` is ``rule:subject`` while the condition holds and NULL after: the unique
    constraint on it is what keeps one open alert per rule and subject, even with several nodes."""

    __tablename__ = "supervision_alert"

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(max_length=32, index=True)
    subject: str = Field(max_length=255)
    login: str | None = Field(default=None, max_length=255, index=True)
    open_key: str | None = Field(default=None, max_length=300, unique=True)
    message: str = Field(max_length=500)
    raised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    acknowledged_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    acknowledged_by: str | None = Field(default=None, max_length=255)
    delivery: str = Field(default="", max_length=500)
    """How sending went, e.g. ``mail:sent sms:failed (HTTP 500)``."""


class ScreenWatch(SQLModel, table=True):
    """A supervisor watching an agent's screen, view-only, from start to end."""

    __tablename__ = "supervision_screen_watch"

    id: int | None = Field(default=None, primary_key=True)
    supervisor: str = Field(max_length=255, index=True)
    session_id: str = Field(max_length=32, index=True)
    login: str = Field(max_length=255)
    node: str | None = Field(default=None, max_length=255, index=True)
    """The node serving the watched agent's session when the watch began: a survivor ends a dead node's watches
    (a watch of a seat on another node also ends when that node dies, with the session its seat belongs to)."""
    agent_told: bool
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    grid: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    """From the wall's grid of thumbnails (open while the grid keeps asking), not a full watch."""
    seen_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """A grid watch: when the grid last asked for the seat's picture."""


class HelpRequest(SQLModel, table=True):
    """An agent's "need help" flag on the wall, from the agent's page or the phone, until answered or the session
    ends; reports count the answered and the unanswered."""

    __tablename__ = "supervision_help_request"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(max_length=32, index=True)
    login: str = Field(max_length=255, index=True)
    source: str = Field(max_length=16)
    """``portal`` (the agent's page) or ``phone`` (a DTMF code, through the voice domain)."""
    call: str | None = Field(default=None, max_length=255)
    """The customer call in progress when the agent asked, if the voice domain knew one."""
    requested_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    answered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    answered_by: str | None = Field(default=None, max_length=255)
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """Answered, or the session ended without an answer."""


class Bulletin(SQLModel, table=True):
    """A bulletin or a short knowledge note a supervisor posts for home agents."""

    __tablename__ = "supervision_bulletin"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    """``bulletin`` (news of the day) or ``note`` (a knowledge note that stays)."""
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    author: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    priority: str = Field(default="normal", max_length=16)
    """``normal`` or ``urgent``: an urgent bulletin is shown in the seat's status bar, over the agent's work."""
    audience: str = Field(default="", max_length=255)
    """The policy group it is for; empty means every home agent."""
    updated_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    removed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """Set when a supervisor removes it; the row stays for the audit trail's sake."""


class StandbyAgent(SQLModel, table=True):
    """An agent who may be called in on a surge day, and how to reach them."""

    __tablename__ = "supervision_standby_agent"

    login: str = Field(primary_key=True, max_length=255)
    email: str | None = Field(default=None, max_length=255)
    phone: str | None = Field(default=None, max_length=20)
    """E.164."""
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CallIn(SQLModel, table=True):
    """One surge call-in: who was asked to come online, when, and how each message went."""

    __tablename__ = "supervision_call_in"

    id: int | None = Field(default=None, primary_key=True)
    started_by: str = Field(max_length=255)
    message: str = Field(max_length=500)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    delivery: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    """JSON: login → how sending went."""
