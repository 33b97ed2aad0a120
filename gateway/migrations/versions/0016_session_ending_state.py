"""a home session has an ``ending`` state while its tunnel, seat and voice leg close

Expand only: PostgreSQL's ``sessionstate`` enum gains ``ENDING`` (SQLite stores the name as text). Nodes of the
previous release read an ending session as unknown state, so upgrade before starting nodes of this release; nothing
else changes. Downgrade finishes every ending session first (PostgreSQL cannot drop an enum value in place, so the
value stays, unused).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # In the upgrade's own transaction (as 0009 does), not an autocommit block: that would commit early and let a
        # concurrent upgrader past the advisory lock. Nothing in this upgrade uses the value before the commit.
        op.execute("ALTER TYPE sessionstate ADD VALUE IF NOT EXISTS 'ENDING' BEFORE 'ENDED'")


def downgrade() -> None:
    op.execute("UPDATE home_session SET state = 'ENDED' WHERE state = 'ENDING'")
