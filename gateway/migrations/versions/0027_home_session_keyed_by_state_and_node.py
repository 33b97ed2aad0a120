"""keyed home sessions indexed by state and node

The ``vpn.peers`` worker's full pass first looks for active keyed sessions with no tunnel lease (a missed "started"
nudge, a restart), of its node. Through ``ix_home_session_state`` the database reads every active session's row to
check its key and node, and finds none missing in most passes: 3.6-4 ms at 10,000 sessions on SQLite, before the
pass may set any peer. A partial index of the keyed sessions by ``(state, node, id)`` answers it from the index
alone (1.6-1.7 ms). It only expands, so nodes upgrade one by one. A plain index statement, not batch mode: on SQLite
batch mode would rebuild the table and drop migration 0021's triggers.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    keyed = sa.text("wireguard_key IS NOT NULL")
    op.create_index(
        "ix_home_session_keyed_state_node",
        "home_session",
        ["state", "node", "id"],
        unique=False,
        sqlite_where=keyed,
        postgresql_where=keyed,
    )


def downgrade() -> None:
    op.drop_index("ix_home_session_keyed_state_node", table_name="home_session")
