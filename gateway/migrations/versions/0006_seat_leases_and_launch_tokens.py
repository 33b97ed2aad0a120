"""Seats: seat leases (children of home sessions) and one-time launch tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seat_lease",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("app_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("backend", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("seat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rfb_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("connection_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("state", sa.Enum("ASSIGNED", "CONNECTED", "ENDED", name="seatleasestate"), nullable=False),
        sa.Column("idle_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("max_session_seconds", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "end_reason",
            sa.Enum("SESSION_ENDED", "IDLE", "MAX_LENGTH", "ABANDONED", "CRASHED", "LOST", name="seatendreason"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["session_id"], ["home_session.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("seat_lease", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seat_lease_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_seat_lease_node"), ["node"], unique=False)
        batch_op.create_index(batch_op.f("ix_seat_lease_seat_id"), ["seat_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seat_lease_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seat_lease_state"), ["state"], unique=False)

    op.create_table(
        "launch_token",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("backend", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("lease_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("seat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.ForeignKeyConstraint(["lease_id"], ["seat_lease.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("launch_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_launch_token_token_sha256"), ["token_sha256"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("launch_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_launch_token_token_sha256"))
    op.drop_table("launch_token")
    with op.batch_alter_table("seat_lease", schema=None) as batch_op:
        for column in ("state", "session_id", "seat_id", "node", "login"):
            batch_op.drop_index(batch_op.f(f"ix_seat_lease_{column}"))
    op.drop_table("seat_lease")
    sa.Enum(name="seatendreason").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="seatleasestate").drop(op.get_bind(), checkfirst=True)
