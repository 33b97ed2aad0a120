"""the node of a voice leg and of a screen watch

A voice leg and a screen watch belong to the node that serves their session (the leg is dialled and the watch's
stream is served there), so a survivor can end those of a dead node by name, as it ends its tunnels. NULL for rows
written before this revision. Additive only: nodes of the previous release keep working beside it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sqlmodel.sql.sqltypes.AutoString(length=255)
TABLES = ("voice_call_leg", "supervision_screen_watch")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("node", NAME, nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_node"), ["node"], unique=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_node"))
            batch_op.drop_column("node")
