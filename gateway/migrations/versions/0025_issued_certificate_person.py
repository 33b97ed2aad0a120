"""an agent certificate is bound to the person it was issued to, by their directory id

``issued_certificate.person_id`` (indexed): the directory's stable id of the agent (AD objectGUID, OpenLDAP entryUUID,
``builtin:<key>``), written at issuance. Taking a person's seat away revokes their certificates by it; before, it
matched every live certificate against the names the person carries now, so someone holding (or having applied
under) a colleague's UPN got the colleague's certificate revoked.

Backfill: an agent certificate takes the person of the sessions that signed in with it (``home_session``'s
``cert_fingerprint``), when they are all one person; a sign-in proved both the key and the match to that person's
entry. A certificate no session used, or used by sessions of several people (a UPN passed from one to another),
or by any session 0008 could not give a person (``legacy:``, which may have been someone else), stays NULL and is
still matched by name, except against a person other than the one whose sessions signed in with it. A nullable
column only: nodes of the previous release ignore it, so nodes upgrade one by one (a certificate such a node issues
meanwhile stays NULL).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "issued_certificate", sa.Column("person_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
    )
    op.create_index(op.f("ix_issued_certificate_person_id"), "issued_certificate", ["person_id"], unique=False)
    # One pass over the sessions, grouped by certificate, joined to the register once (UPDATE … FROM: PostgreSQL,
    # SQLite 3.33+): 0.1 s for 3,000 certificates and 200,000 sessions on SQLite, where two subqueries per
    # certificate over the sessions took 419 s, with the ADD COLUMN's lock held throughout on PostgreSQL. A legacy
    # session counts as one more person: it may have been someone else's.
    op.execute(
        """
        UPDATE issued_certificate SET person_id = used.person_id
        FROM (
            SELECT cert_fingerprint, MIN(person_id) AS person_id FROM home_session
            WHERE cert_fingerprint IS NOT NULL
            GROUP BY cert_fingerprint HAVING COUNT(DISTINCT person_id) = 1
        ) AS used
        WHERE issued_certificate.kind = 'AGENT'
            AND issued_certificate.fingerprint_sha256 = used.cert_fingerprint
            AND used.person_id NOT LIKE 'legacy:%'
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("issued_certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_certificate_person_id"))
        batch_op.drop_column("person_id")
