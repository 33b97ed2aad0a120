"""a withdrawal owes the revocation of the certificates of the person's current names while the directory is down

``enrollment_application.revocation_owed_since``: set by a withdrawal that could not ask the directory how the person
is named now (a rename since the application hides certificates of the new name); the membership pass revokes them
once the directory answers, and clears it. A nullable column only: nodes of the previous release ignore it, so nodes
upgrade one by one.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "enrollment_application", sa.Column("revocation_owed_since", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("enrollment_application", schema=None) as batch_op:
        batch_op.drop_column("revocation_owed_since")
