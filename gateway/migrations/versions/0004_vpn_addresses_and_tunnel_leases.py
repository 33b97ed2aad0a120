"""VPN: agents' stable addresses (IPAM) and one tunnel lease per home session

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vpn_address_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("ipv4", sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
        sa.Column("ipv6", sqlmodel.sql.sqltypes.AutoString(length=39), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ipv4"),
        sa.UniqueConstraint("ipv6"),
        sa.UniqueConstraint("login"),
        sa.UniqueConstraint("ordinal"),
    )
    with op.batch_alter_table("vpn_address_assignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vpn_address_assignment_released_at"), ["released_at"], unique=False)

    op.create_table(
        "vpn_tunnel_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("public_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ipv4", sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
        sa.Column("ipv6", sqlmodel.sql.sqltypes.AutoString(length=39), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("state", sa.Enum("DESIRED", "REMOVED", name="leasestate"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_handshake_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("rx_bytes", sa.BigInteger(), nullable=False),
        sa.Column("tx_bytes", sa.BigInteger(), nullable=False),
        sa.Column("health_sampled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["home_session.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
    )
    with op.batch_alter_table("vpn_tunnel_lease", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vpn_tunnel_lease_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_vpn_tunnel_lease_public_key"), ["public_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_vpn_tunnel_lease_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vpn_tunnel_lease", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vpn_tunnel_lease_state"))
        batch_op.drop_index(batch_op.f("ix_vpn_tunnel_lease_public_key"))
        batch_op.drop_index(batch_op.f("ix_vpn_tunnel_lease_login"))

    op.drop_table("vpn_tunnel_lease")
    with op.batch_alter_table("vpn_address_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vpn_address_assignment_released_at"))

    op.drop_table("vpn_address_assignment")
    sa.Enum(name="leasestate").drop(op.get_bind(), checkfirst=True)
