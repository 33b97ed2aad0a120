"""SMS satisfaction surveys after answered customer calls, their replies and the numbers opted out

Expand only: new tables; nodes of the previous release never read them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "voice_satisfaction_survey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_event_id", sa.Integer(), nullable=False, unique=True),
        sa.Column("session_id", _text(32), nullable=False),
        sa.Column("person_id", _text(255), nullable=False),
        sa.Column("login", _text(255), nullable=False),
        sa.Column("customer_e164", _text(20), nullable=False),
        sa.Column(
            "state",
            sa.Enum("PENDING", "SENDING", "SENT", "FAILED", "OPTED_OUT", name="surveystate"),
            nullable=False,
        ),
        sa.Column("problem", _text(255), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
    )
    for column in ("session_id", "person_id", "customer_e164", "state", "sent_at"):
        op.create_index(f"ix_voice_satisfaction_survey_{column}", "voice_satisfaction_survey", [column])
    op.create_table(
        "voice_survey_reply",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", _text(128), nullable=False, unique=True),
        sa.Column("sender_e164", _text(32), nullable=False),
        sa.Column("text", _text(160), nullable=False),
        sa.Column("kind", sa.Enum("SCORE", "STOP", "GARBLED", "UNKNOWN", "LATE", name="replykind"), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in ("sender_e164", "survey_id"):
        op.create_index(f"ix_voice_survey_reply_{column}", "voice_survey_reply", [column])
    op.create_table(
        "voice_survey_opt_out",
        sa.Column("e164", _text(20), primary_key=True),
        sa.Column("source", _text(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("voice_survey_opt_out")
    op.drop_table("voice_survey_reply")
    op.drop_table("voice_satisfaction_survey")
    sa.Enum(name="replykind").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="surveystate").drop(op.get_bind(), checkfirst=True)
