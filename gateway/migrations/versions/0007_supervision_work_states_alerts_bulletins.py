"""supervision work states alerts watches bulletins standby

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supervision_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("open_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("delivery", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    with op.batch_alter_table("supervision_alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supervision_alert_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_alert_raised_at"), ["raised_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_alert_rule"), ["rule"], unique=False)

    op.create_table(
        "supervision_bulletin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supervision_bulletin", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supervision_bulletin_created_at"), ["created_at"], unique=False)

    op.create_table(
        "supervision_call_in",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivery", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "supervision_screen_watch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supervisor", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("agent_told", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supervision_screen_watch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supervision_screen_watch_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_screen_watch_supervisor"), ["supervisor"], unique=False)

    op.create_table(
        "supervision_standby_agent",
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("login"),
    )
    op.create_table(
        "supervision_work_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column(
            "status", sa.Enum("READY", "ON_CALL", "WRAP_UP", "BREAK", "OFFLINE", name="workstatus"), nullable=False
        ),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supervision_work_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supervision_work_state_ended_at"), ["ended_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_work_state_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_work_state_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_work_state_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("supervision_work_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supervision_work_state_started_at"))
        batch_op.drop_index(batch_op.f("ix_supervision_work_state_session_id"))
        batch_op.drop_index(batch_op.f("ix_supervision_work_state_login"))
        batch_op.drop_index(batch_op.f("ix_supervision_work_state_ended_at"))

    op.drop_table("supervision_work_state")
    op.drop_table("supervision_standby_agent")
    with op.batch_alter_table("supervision_screen_watch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supervision_screen_watch_supervisor"))
        batch_op.drop_index(batch_op.f("ix_supervision_screen_watch_session_id"))

    op.drop_table("supervision_screen_watch")
    op.drop_table("supervision_call_in")
    with op.batch_alter_table("supervision_bulletin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supervision_bulletin_created_at"))

    op.drop_table("supervision_bulletin")
    with op.batch_alter_table("supervision_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supervision_alert_rule"))
        batch_op.drop_index(batch_op.f("ix_supervision_alert_raised_at"))
        batch_op.drop_index(batch_op.f("ix_supervision_alert_login"))

    op.drop_table("supervision_alert")
    sa.Enum(name="workstatus").drop(op.get_bind(), checkfirst=True)
