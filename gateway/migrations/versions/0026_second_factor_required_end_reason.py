"""end reason second_factor_required: a live session signed in without the second factor the policy now asks of it

Re-validation ends such a session (the policy changed, or the person joined a group whose role asks a second
factor). PostgreSQL keeps the reasons as the enum type ``endreason``, which gains the value; SQLite stores them as
a VARCHAR(26) it never enforces, and SECOND_FACTOR_REQUIRED fits it. Additive only, but a node of the previous
release that reads a session ended with it (a stale cookie of that session) cannot map the value: upgrade every node
before a policy asks a second factor of roles that had none.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE endreason ADD VALUE IF NOT EXISTS 'SECOND_FACTOR_REQUIRED'")


def downgrade() -> None:
    """Nothing: PostgreSQL cannot drop a value from an enum type; sessions ended with it keep their reason there."""
