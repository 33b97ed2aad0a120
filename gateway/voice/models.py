"""Callback numbers, callback legs (desired and observed), call events, the webhook's seen-event set, and the SMS
satisfaction surveys with their replies and opt-outs."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel


class NumberStatus(StrEnum):
    AWAITING_CODE = "awaiting_code"
    """Added; the owner has not yet typed the code we texted to it."""
    PENDING_APPROVAL = "pending_approval"
    """Confirmed by its owner; an administrator must approve it (``changes_need_approval``)."""
    CONFIRMED = "confirmed"


class CallbackNumber(SQLModel, table=True):
    """A number an agent asked to be called back on. The code is stored only as a salted SHA-256.

    It is the person's (``person_id``, the directory's stable id), so a renamed account keeps its verified numbers;
    ``login`` is the account name it was last added under, for display.
    """

    __tablename__ = "voice_callback_number"
    __table_args__ = (UniqueConstraint("person_id", "e164"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255, index=True)
    e164: str = Field(max_length=20)
    region: str = Field(max_length=2)
    kind: str = Field(max_length=32)
    status: NumberStatus = Field(max_length=32)
    code_salt: str | None = Field(default=None, max_length=32)
    code_sha256: str | None = Field(default=None, max_length=64)
    code_expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    code_attempts: int = 0
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    approved_by: str | None = Field(default=None, max_length=255)
    vetted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    vetted_by: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LegState(StrEnum):
    REQUESTED = "requested"
    """Wanted; a dial is due or under way with no answer yet."""
    RINGING = "ringing"
    CONNECTED = "connected"
    DROPPED = "dropped"
    """Was connected and went down while still wanted: a re-dial is due."""
    ENDED = "ended"
    """Hung up because it was no longer wanted (logout, session end)."""
    FAILED = "failed"
    """Gave up: dial attempts exhausted or the number is no longer allowed."""


LIVE_LEG_STATES = (LegState.REQUESTED, LegState.RINGING, LegState.CONNECTED, LegState.DROPPED)


class CallLeg(SQLModel, table=True):
    """The nailed-up leg of one home session: what should be (``wanted``) and what the platform last reported."""

    __tablename__ = "voice_call_leg"

    id: str = Field(primary_key=True, max_length=32)
    session_id: str = Field(max_length=32, index=True)
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255, index=True)
    """The account name of the session, for display."""
    node: str | None = Field(default=None, max_length=255, index=True)
    """The node serving the session when the leg was wanted: a survivor releases the legs of a dead node."""
    e164: str = Field(max_length=20)
    state: LegState = Field(max_length=16, index=True)
    wanted: bool = True
    agent_ready: bool = False
    platform_ready: bool = False
    """The ready state last delivered to the platform; the reconciler sends ``agent_ready`` when they differ."""
    attempts: int = 0
    """Dials since the leg was last connected."""
    channel_id: str | None = Field(default=None, max_length=64, index=True)
    """The platform's id of the current dial; ``None`` when no dial is under way."""
    next_dial_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_cause: int | None = None
    problem: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    connected_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class CallEvent(SQLModel, table=True):
    """Something that happened to a session's voice: a dial, a leg state, a customer call offered/answered/ended."""

    __tablename__ = "voice_call_event"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(max_length=32, index=True)
    person_id: str = Field(max_length=255, index=True)
    """Whose dials the hourly callback limit counts."""
    login: str = Field(max_length=255, index=True)
    leg_id: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=32, index=True)
    caller: str | None = Field(default=None, max_length=32)
    cause: int | None = None
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))


class SeenWebhookEvent(SQLModel, table=True):
    """Event ids the CTI webhook already accepted: a replayed message is refused even inside the time window."""

    __tablename__ = "voice_seen_webhook_event"

    event_id: str = Field(primary_key=True, max_length=128)
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))


class SurveyState(StrEnum):
    PENDING = "pending"
    """Wanted; the background pass has not taken it yet."""
    SENDING = "sending"
    """Taken by a pass, its outcome not yet recorded; back to ``pending`` (or ``failed``) if it stays so for
    ``voice.survey.unconfirmed_seconds``."""
    SENT = "sent"
    FAILED = "failed"
    OPTED_OUT = "opted_out"
    """Not sent: the number had opted out by the time the pass came."""


class SatisfactionSurvey(SQLModel, table=True):
    """The one survey of one answered customer call, keyed by the call's ``call.ended`` event (unique: one survey
    per call, whichever node or retry records it). ``customer_e164`` is the caller's number; pages show it masked."""

    __tablename__ = "voice_satisfaction_survey"

    id: int | None = Field(default=None, primary_key=True)
    call_event_id: int = Field(unique=True)
    session_id: str = Field(max_length=32, index=True)
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255)
    customer_e164: str = Field(max_length=20, index=True)
    state: SurveyState = Field(max_length=16, index=True)
    problem: str | None = Field(default=None, max_length=255)
    score: int | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))
    """When the text went out; while ``sending``, when the current attempt began (its outcome is recorded only if
    this still matches, so an attempt given up on cannot overwrite its retry)."""
    replied_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ReplyKind(StrEnum):
    SCORE = "score"
    STOP = "stop"
    GARBLED = "garbled"
    """Neither a score in range nor a stop word."""
    UNKNOWN = "unknown"
    """From a number that was never sent a survey."""
    LATE = "late"
    """After ``voice.survey.reply_hours``, or to a survey already scored."""


class SurveyReply(SQLModel, table=True):
    """Every inbound text the SMS gateway delivered, whatever it said; ``message_id`` is unique so a redelivery is
    stored once."""

    __tablename__ = "voice_survey_reply"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=128, unique=True)
    sender_e164: str = Field(max_length=32, index=True)
    text: str = Field(max_length=160)
    kind: ReplyKind = Field(max_length=16)
    survey_id: int | None = Field(default=None, index=True)
    score: int | None = None
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SurveyOptOut(SQLModel, table=True):
    """A number that asked for no more surveys (a stop reply, or an administrator on its owner's behalf)."""

    __tablename__ = "voice_survey_opt_out"

    e164: str = Field(primary_key=True, max_length=20)
    source: str = Field(max_length=32)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class NumberPublic(BaseModel):
    """A number as pages and the API show it: masked."""

    id: int
    masked: str
    kind: str
    status: NumberStatus
    vetted: bool


class NumberAwaitingApproval(BaseModel):
    """A confirmed number as the security admins' approval page shows it: masked, with whose it is."""

    id: int
    login: str
    masked: str
    kind: str
    confirmed_at: datetime | None


class LegPublic(BaseModel):
    """A leg as supervisors and the agent see it."""

    session_id: str
    login: str
    number: str
    state: LegState
    attempts: int
    last_cause: int | None
    problem: str | None
    agent_ready: bool
