"""foundation: audit chain and PKI register

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
        sa.UniqueConstraint("prev_hash"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The chain's head exists from the start, so that concurrent first appends cannot race to create it.
    op.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')")
    op.create_table(
        "crl_publication",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_count", sa.Integer(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "issued_certificate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sa.Enum("AGENT", "SERVER", name="certificatekind"), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("upn", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("fingerprint_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("wireguard_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("issued_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("renewed_from", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint_sha256"),
    )
    with op.batch_alter_table("issued_certificate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issued_certificate_not_after"), ["not_after"], unique=False)
        batch_op.create_index(batch_op.f("ix_issued_certificate_revoked_at"), ["revoked_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_issued_certificate_serial"), ["serial"], unique=True)
        batch_op.create_index(batch_op.f("ix_issued_certificate_upn"), ["upn"], unique=False)
        batch_op.create_index(batch_op.f("ix_issued_certificate_wireguard_key"), ["wireguard_key"], unique=False)

    op.create_table(
        "trusted_authority",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("fingerprint_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("imported_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint_sha256"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("trusted_authority")
    with op.batch_alter_table("issued_certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_certificate_wireguard_key"))
        batch_op.drop_index(batch_op.f("ix_issued_certificate_upn"))
        batch_op.drop_index(batch_op.f("ix_issued_certificate_serial"))
        batch_op.drop_index(batch_op.f("ix_issued_certificate_revoked_at"))
        batch_op.drop_index(batch_op.f("ix_issued_certificate_not_after"))

    op.drop_table("issued_certificate")
    op.drop_table("crl_publication")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))
        batch_op.drop_index(batch_op.f("ix_audit_event_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_event_action"))

    op.drop_table("audit_event")
