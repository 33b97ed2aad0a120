"""screen recordings of seats, linked to person, seat lease, home session and customer call

Expand only: a new table; nodes of the previous release never read it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "screen_recording",
        sa.Column("id", _text(32), primary_key=True),
        sa.Column("person_id", _text(255), nullable=False),
        sa.Column("login", _text(255), nullable=False),
        sa.Column("session_id", _text(32), sa.ForeignKey("home_session.id"), nullable=False),
        sa.Column("lease_id", _text(32), sa.ForeignKey("seat_lease.id"), nullable=False),
        sa.Column("seat_id", _text(64), nullable=False),
        sa.Column("app_id", _text(128), nullable=False),
        sa.Column("backend", _text(16), nullable=False),
        sa.Column("node", _text(255), nullable=False),
        sa.Column("call_event_id", sa.Integer(), nullable=True),
        sa.Column("file_name", _text(255), nullable=False),
        sa.Column(
            "state",
            sa.Enum("RECORDING", "CLOSED", "SEALED", "FAILED", "PURGED", name="recordingstate"),
            nullable=False,
        ),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("problem", _text(500), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
    )
    for column in ("person_id", "session_id", "lease_id", "node", "call_event_id", "state", "started_at"):
        op.create_index(f"ix_screen_recording_{column}", "screen_recording", [column])


def downgrade() -> None:
    op.drop_table("screen_recording")
    sa.Enum(name="recordingstate").drop(op.get_bind(), checkfirst=True)
