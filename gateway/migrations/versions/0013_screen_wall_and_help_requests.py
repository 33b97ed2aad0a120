"""screen watches from the screen wall, and agents' help requests

A screen watch may come from the wall's grid of thumbnails (``grid``): it stays open while the grid keeps asking
for the seat's picture (``seen_at``) and is ended by the alert job when it stops. ``help_request`` holds an agent's
"need help" flag until a supervisor answers it or the session ends.

Expand only: a node of the previous release ignores the new columns and table.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("supervision_screen_watch") as batch_op:
        batch_op.add_column(sa.Column("grid", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "supervision_help_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", TEXT(length=32), nullable=False),
        sa.Column("login", TEXT(length=255), nullable=False),
        sa.Column("source", TEXT(length=16), nullable=False),
        sa.Column("call", TEXT(length=255), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", TEXT(length=255), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    for column in ("session_id", "login", "requested_at"):
        op.create_index(f"ix_supervision_help_request_{column}", "supervision_help_request", [column])


def downgrade() -> None:
    op.drop_table("supervision_help_request")
    with op.batch_alter_table("supervision_screen_watch") as batch_op:
        batch_op.drop_column("seen_at")
        batch_op.drop_column("grid")
