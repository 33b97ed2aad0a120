"""home sessions, login throttling, TOTP, stored policy versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "home_session",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("csrf_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("state", sa.Enum("PENDING_SECOND_FACTOR", "ACTIVE", "ENDED", name="sessionstate"), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("user_dn", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("upn", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("roles", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("cert_serial", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("cert_issuer", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("cert_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("cert_not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wireguard_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("cert_pem", sa.Text(), nullable=True),
        sa.Column("second_factor", sa.Boolean(), nullable=False),
        sa.Column("source_ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "end_reason",
            sa.Enum(
                "LOGOUT",
                "IDLE",
                "MAX_LENGTH",
                "ADMIN",
                "CERTIFICATE_REVOKED",
                "CERTIFICATE_EXPIRED",
                "ACCOUNT_DISABLED",
                "ACCOUNT_LOCKED",
                "ACCOUNT_GONE",
                "ACCOUNT_STATE",
                "ROLE_REMOVED",
                "HR_SUSPENDED",
                "SECOND_FACTOR_ABANDONED",
                "REPLACED",
                name="endreason",
            ),
            nullable=True,
        ),
        sa.Column("ended_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("home_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_home_session_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_home_session_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_home_session_token_sha256"), ["token_sha256"], unique=True)

    op.create_table(
        "login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source_ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_attempt_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempt_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempt_source_ip"), ["source_ip"], unique=False)

    op.create_table(
        "policy_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "totp_secret",
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("login"),
    )


def downgrade() -> None:
    op.drop_table("totp_secret")
    op.drop_table("policy_version")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_attempt_source_ip"))
        batch_op.drop_index(batch_op.f("ix_login_attempt_login"))
        batch_op.drop_index(batch_op.f("ix_login_attempt_at"))

    op.drop_table("login_attempt")
    with op.batch_alter_table("home_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_home_session_token_sha256"))
        batch_op.drop_index(batch_op.f("ix_home_session_state"))
        batch_op.drop_index(batch_op.f("ix_home_session_login"))

    op.drop_table("home_session")
