"""person identity: sessions, second factors, throttles and applications keyed by the directory's stable id;
sessions keep the group identifiers (DNs, SIDs) the policy is evaluated with

Rows written before this revision knew a person only by the name as typed. They cannot be resolved here (the
directory is not reachable from a migration), so they get ``legacy:<name as typed>`` and are adopted at the person's
next sign-in (``gateway/sessions/adoption.py``): a legacy TOTP secret becomes the person's, legacy live sessions
count for the one-live-session rule. Applications get their id when HR next acts on them.

Contract: ``totp_secret`` is replaced by ``person_totp`` and ``home_session.person_id`` becomes NOT NULL, so nodes of
the previous release cannot run on this schema: stop all nodes, ``sohogw db upgrade``, start all nodes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("home_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column("policy_groups", sa.Text(), nullable=True))
    # Legacy sessions keep their group names: re-validation reads the groups again from the directory.
    op.execute("UPDATE home_session SET person_id = 'legacy:' || login, policy_groups = groups")
    with op.batch_alter_table("home_session", schema=None) as batch_op:
        batch_op.alter_column("person_id", existing_type=sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False)
        batch_op.alter_column("policy_groups", existing_type=sa.Text(), nullable=False)
        batch_op.create_index(batch_op.f("ix_home_session_person_id"), ["person_id"], unique=False)

    with op.batch_alter_table("enrollment_application", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_enrollment_application_person_id"), ["person_id"], unique=False)

    op.create_table(
        "person_totp",
        sa.Column("person_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.Integer(), nullable=False),
        sa.Column("enrolling_session", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.execute(
        "INSERT INTO person_totp (person_id, login, secret, created_at, confirmed_at, last_used_step) "
        "SELECT 'legacy:' || login, login, secret, created_at, confirmed_at, last_used_step FROM totp_secret"
    )
    op.drop_table("totp_secret")

    op.create_table(
        "login_throttle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_throttle_window_started_at"), ["window_started_at"], unique=False)

    op.create_table(
        "totp_enrolment_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("person_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("issued_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_session", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_sha256"),
    )
    with op.batch_alter_table("totp_enrolment_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_totp_enrolment_code_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    """Back to rows keyed by name: a person's secret goes under the account name it was last shown with."""
    op.drop_table("totp_enrolment_code")
    op.drop_table("login_throttle")
    op.create_table(
        "totp_secret",
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("login"),
    )
    op.execute(
        "INSERT INTO totp_secret (login, secret, created_at, confirmed_at, last_used_step) "
        "SELECT login, MIN(secret), MIN(created_at), MIN(confirmed_at), MAX(last_used_step) FROM person_totp "
        "GROUP BY login"
    )
    op.drop_table("person_totp")
    with op.batch_alter_table("enrollment_application", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_application_person_id"))
        batch_op.drop_column("person_id")
    with op.batch_alter_table("home_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_home_session_person_id"))
        batch_op.drop_column("policy_groups")
        batch_op.drop_column("person_id")
