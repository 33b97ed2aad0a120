"""a Guacamole seat lease keeps the agent's last keyboard or pointer input, as guacamole-lite reports it

``seat_lease.last_input_at``: when guacamole-lite last saw a ``mouse``, ``key`` or ``touch`` instruction from the
agent's browser (``/internal/launch/input``), so the node enforcing the policy's idle timeout need not be the one
answering guacamole-lite. A column of its own, not ``last_activity_at``: that one moves at every connect and
disconnect (the reconnect grace), and a reconnect must not restart the idle clock. A nullable column only: nodes of
the previous release ignore it, so nodes upgrade one by one.

Live Guacamole leases (assigned or connected) start with ``last_input_at`` = the upgrade's time, not NULL: NULL
counts idle time from ``started_at``, so every RDP seat in use longer than the idle timeout would end at the first
limits pass after the upgrade.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("seat_lease", sa.Column("last_input_at", sa.DateTime(timezone=True), nullable=True))
    seat_lease = sa.table("seat_lease", sa.column("last_input_at", sa.DateTime(timezone=True)))
    op.execute(
        sa.update(seat_lease)
        .where(sa.text("backend = 'guacamole' AND state IN ('ASSIGNED', 'CONNECTED')"))
        .values(last_input_at=datetime.now(UTC))
    )


def downgrade() -> None:
    with op.batch_alter_table("seat_lease", schema=None) as batch_op:
        batch_op.drop_column("last_input_at")
