"""home sessions indexed by person and state

The take-over of every sign-in asks for the person's live sessions. By ``person_id`` alone the database walks every
session the person ever had and filters their state (0.36 ms at 300 sessions, 0.69 ms at 1,300 on PostgreSQL, and
a person signs in every working day); by ``(person_id, state)`` it reads the live ones only (0.06 ms). It only
expands: ``ix_home_session_person_id``, which the new index makes redundant, stays until a release that contracts
anyway, so nodes upgrade one by one (docs/deployment.md, "Upgrade"). A plain index statement, not batch mode: on SQLite
batch mode would rebuild the table and drop migration 0021's triggers.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_home_session_person_id_state", "home_session", ["person_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_home_session_person_id_state", table_name="home_session")
