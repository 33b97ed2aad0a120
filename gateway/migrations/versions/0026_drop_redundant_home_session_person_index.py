"""drop the index on home_session.person_id alone

Migration 0022's ``(person_id, state)`` index serves every query that named ``person_id`` alone (its leading
column), so ``ix_home_session_person_id`` only cost each session row written one more index entry. Dropping an index
changes no query's result, so nodes still on the release before this one keep working during a rolling upgrade
(docs/deployment.md, "Upgrade"). A plain index statement, not batch mode: on SQLite batch mode would rebuild the table
and drop migration 0021's triggers.

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
    op.drop_index("ix_home_session_person_id", table_name="home_session")


def downgrade() -> None:
    op.create_index("ix_home_session_person_id", "home_session", ["person_id"], unique=False)
