"""bulletins carry a priority and an audience, and can be edited and removed

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("supervision_bulletin") as batch_op:
        batch_op.add_column(
            sa.Column("priority", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="normal")
        )
        batch_op.add_column(
            sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("supervision_bulletin") as batch_op:
        batch_op.drop_column("removed_at")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("audience")
        batch_op.drop_column("priority")
