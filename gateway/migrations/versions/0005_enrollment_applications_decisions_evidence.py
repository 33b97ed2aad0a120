"""enrollment: applications, stage decisions, evidence, environment-check runs, imports, certificate requests

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enrollment_application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("upn", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("user_dn", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("callback_e164", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column(
            "state",
            sa.Enum("OPEN", "APPROVED", "REJECTED", "WITHDRAWN", "SUSPENDED", name="applicationstate"),
            nullable=False,
        ),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("recheck_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enrollment_application", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_application_closed_at"), ["closed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_application_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_application_recheck_due_at"), ["recheck_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_application_stage"), ["stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_application_state"), ["state"], unique=False)

    op.create_table(
        "enrollment_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "enrollment_certificate_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("upn", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("state", sa.Enum("OPEN", "ISSUED", "CANCELLED", name="certificaterequeststate"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["enrollment_application.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enrollment_certificate_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollment_certificate_request_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_enrollment_certificate_request_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_certificate_request_state"), ["state"], unique=False)

    op.create_table(
        "enrollment_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("outcome", sa.Enum("PASSED", "FAILED", "SKIPPED", name="decisionoutcome"), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["enrollment_application.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enrollment_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_decision_application_id"), ["application_id"], unique=False)

    op.create_table(
        "enrollment_envcheck_run",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("download_bytes", sa.Integer(), nullable=False),
        sa.Column("download_seconds", sa.Float(), nullable=False),
        sa.Column("upload_bytes", sa.Integer(), nullable=False),
        sa.Column("upload_seconds", sa.Float(), nullable=False),
        sa.Column("ping_arrivals", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["enrollment_application.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enrollment_envcheck_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_envcheck_run_application_id"), ["application_id"], unique=False)

    op.create_table(
        "enrollment_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sa.Enum("FILE", "ENVIRONMENT_CHECK", name="evidencekind"), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("added_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["enrollment_application.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enrollment_evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_evidence_application_id"), ["application_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("enrollment_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_evidence_application_id"))

    op.drop_table("enrollment_evidence")
    with op.batch_alter_table("enrollment_envcheck_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_envcheck_run_application_id"))

    op.drop_table("enrollment_envcheck_run")
    with op.batch_alter_table("enrollment_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_decision_application_id"))

    op.drop_table("enrollment_decision")
    with op.batch_alter_table("enrollment_certificate_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_certificate_request_state"))
        batch_op.drop_index(batch_op.f("ix_enrollment_certificate_request_login"))
        batch_op.drop_index(batch_op.f("ix_enrollment_certificate_request_application_id"))

    op.drop_table("enrollment_certificate_request")
    op.drop_table("enrollment_import")
    with op.batch_alter_table("enrollment_application", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_application_state"))
        batch_op.drop_index(batch_op.f("ix_enrollment_application_stage"))
        batch_op.drop_index(batch_op.f("ix_enrollment_application_recheck_due_at"))
        batch_op.drop_index(batch_op.f("ix_enrollment_application_login"))
        batch_op.drop_index(batch_op.f("ix_enrollment_application_closed_at"))

    op.drop_table("enrollment_application")
    # PostgreSQL keeps the enum types the tables used; SQLite has none (CHECK-less VARCHAR).
    for enum_type in ("evidencekind", "decisionoutcome", "certificaterequeststate", "applicationstate"):
        sa.Enum(name=enum_type).drop(op.get_bind(), checkfirst=True)
