"""voice callback numbers legs events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voice_call_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("leg_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("caller", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("cause", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("voice_call_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voice_call_event_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_call_event_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_call_event_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_call_event_session_id"), ["session_id"], unique=False)

    op.create_table(
        "voice_call_leg",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("e164", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column(
            "state",
            sa.Enum("REQUESTED", "RINGING", "CONNECTED", "DROPPED", "ENDED", "FAILED", name="legstate"),
            nullable=False,
        ),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.Column("agent_ready", sa.Boolean(), nullable=False),
        sa.Column("platform_ready", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("channel_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("next_dial_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_cause", sa.Integer(), nullable=True),
        sa.Column("problem", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("voice_call_leg", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voice_call_leg_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_call_leg_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_call_leg_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_call_leg_state"), ["state"], unique=False)

    op.create_table(
        "voice_callback_number",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("e164", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("region", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column(
            "status", sa.Enum("AWAITING_CODE", "PENDING_APPROVAL", "CONFIRMED", name="numberstatus"), nullable=False
        ),
        sa.Column("code_salt", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("code_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("vetted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("vetted_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login", "e164"),
    )
    with op.batch_alter_table("voice_callback_number", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voice_callback_number_login"), ["login"], unique=False)

    op.create_table(
        "voice_seen_webhook_event",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("voice_seen_webhook_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voice_seen_webhook_event_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voice_seen_webhook_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_seen_webhook_event_seen_at"))

    op.drop_table("voice_seen_webhook_event")
    with op.batch_alter_table("voice_callback_number", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_callback_number_login"))

    op.drop_table("voice_callback_number")
    with op.batch_alter_table("voice_call_leg", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_call_leg_state"))
        batch_op.drop_index(batch_op.f("ix_voice_call_leg_session_id"))
        batch_op.drop_index(batch_op.f("ix_voice_call_leg_login"))
        batch_op.drop_index(batch_op.f("ix_voice_call_leg_channel_id"))

    op.drop_table("voice_call_leg")
    with op.batch_alter_table("voice_call_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_call_event_session_id"))
        batch_op.drop_index(batch_op.f("ix_voice_call_event_login"))
        batch_op.drop_index(batch_op.f("ix_voice_call_event_kind"))
        batch_op.drop_index(batch_op.f("ix_voice_call_event_at"))

    op.drop_table("voice_call_event")
