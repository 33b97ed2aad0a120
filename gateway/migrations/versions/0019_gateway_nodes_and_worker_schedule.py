"""gateway nodes, the cluster's worker schedule, the tunnel's node, and the end reason node_lost

Several nodes share one PostgreSQL: each node's row carries its heartbeat (``gateway_node``), each cluster-scope
worker's next due pass is claimed under a row lock (``worker_schedule``), a tunnel lease names the node that
terminates it and that node's WireGuard endpoint (NULL for leases written before this revision), and a session
ended because its node died says so (``node_lost``). Additive only: nodes of the previous release keep working
beside it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sqlmodel.sql.sqltypes.AutoString(length=255)


def upgrade() -> None:
    op.create_table(
        "gateway_node",
        sa.Column("name", NAME, nullable=False),
        sa.Column("incarnation", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sa.Enum("LIVE", "LEFT", "DEAD", name="nodestate"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declared_dead_by", NAME, nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("gateway_node", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_node_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_gateway_node_last_beat_at"), ["last_beat_at"], unique=False)
    op.create_table(
        "worker_schedule",
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_node", NAME, nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("worker"),
    )
    with op.batch_alter_table("vpn_tunnel_lease", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node", NAME, nullable=True))
        batch_op.add_column(sa.Column("gateway_endpoint", NAME, nullable=True))
        batch_op.create_index(batch_op.f("ix_vpn_tunnel_lease_node"), ["node"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # SQLite stores the reason as a VARCHAR(26) it never enforces; NODE_LOST fits it.
        op.execute("ALTER TYPE endreason ADD VALUE IF NOT EXISTS 'NODE_LOST'")


def downgrade() -> None:
    # PostgreSQL cannot drop a value from an enum type; sessions ended with it keep their reason there.
    with op.batch_alter_table("vpn_tunnel_lease", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vpn_tunnel_lease_node"))
        batch_op.drop_column("gateway_endpoint")
        batch_op.drop_column("node")
    op.drop_table("worker_schedule")
    with op.batch_alter_table("gateway_node", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_node_last_beat_at"))
        batch_op.drop_index(batch_op.f("ix_gateway_node_state"))
    op.drop_table("gateway_node")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TYPE nodestate")
